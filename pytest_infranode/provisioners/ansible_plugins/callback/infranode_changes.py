"""Ansible callback ``infranode_changes``: records every changed task, with its diff.

One JSON object per line in the file named by ``INFRANODE_ANSIBLE_CHANGES``; the ansible
provisioner reads it to say *what* a converge changed (the idempotence check shows it), and
which task failed, with Ansible's own message (``"failed"``), for the converge error's reason.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: infranode_changes
    type: aggregate
    short_description: record changed tasks for pytest-infranode
    description:
        - Writes each changed task (host, task name, action, diff) as a JSON line to the file
          named by the INFRANODE_ANSIBLE_CHANGES environment variable.
    requirements:
        - enabled with ANSIBLE_CALLBACKS_ENABLED=infranode_changes
"""

MAX_DIFF = 64 * 1024
"""The longest diff recorded for one task (the provisioner keeps less of it)."""


def _field(result: Any, name: str) -> Any:
    # ansible-core 2.19 added public `result`, `task` and `host`; older ones have only `_result` …
    value = getattr(result, name, None)
    return value if value is not None else getattr(result, f"_{name}")


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no py.typed
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "infranode_changes"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result: Any) -> None:
        data = _field(result, "result")
        if not data.get("changed"):
            return
        diffs: list[str] = []
        for item in [data, *(r for r in data.get("results", []) if isinstance(r, dict))]:
            if item.get("changed") and item.get("diff"):
                diffs.append(self._get_diff(item["diff"]))
        diff = "".join(diffs)
        if len(diff) > MAX_DIFF:  # a template of megabytes: the log has it whole
            diff = diff[:MAX_DIFF] + f"\n… ({len(diff) - MAX_DIFF} more characters: see the converge log)"
        task = _field(result, "task")
        entry = {
            "host": _field(result, "host").get_name(),
            "task": task.get_name(),
            "action": task.action,
            "diff": diff,
        }
        path = os.environ.get("INFRANODE_ANSIBLE_CHANGES")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def _record_failure(self, result: Any, what: str) -> None:
        """A failed task's own message (``"failed": ...``), for the converge error's reason."""
        data = _field(result, "result")
        stderr = str(data.get("stderr") or "").strip().splitlines()
        message = str(data.get("msg") or what)
        if stderr:  # a command's "non-zero return code" says less than what it printed
            message += f" ({stderr[-1]})"
        entry = {
            "host": _field(result, "host").get_name(),
            "task": _field(result, "task").get_name(),
            "failed": str(message)[:MAX_DIFF],
        }
        path = os.environ.get("INFRANODE_ANSIBLE_CHANGES")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self._record_failure(result, "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record_failure(result, "unreachable")
