"""The salt provisioner: masterless ``salt-call --local`` with state and pillar trees copied in.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: salt
      states: salt                  # required; the file_roots tree (top.sls, *.sls)
      pillar: pillar                # optional; the pillar_roots tree
      apply: [web]                  # state names; default: the highstate (top.sls)
      install: true                 # install salt from the platform's packages if missing
      args: ["-l", "warning"]       # extra salt-call arguments

Trees go in through the Docker API (``/var/lib/infranode/salt``). Debian 12 and 13 no longer
ship Salt, and Salt's own repository is a vendor download: there the converge fails saying so.

"Changed" is Salt's own: a state whose result carries ``changes``; salt-call prints JSON
(``--out=json``) and each changed state is reported with its changes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any
from typing import final

from pytest_infranode.errors import ConvergeError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import in_node
from pytest_infranode.provisioners._common import tree_files
from pytest_infranode.provisioners._innode import ensure_in_node
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

NAME = "salt"
OPTIONS = ("states", "pillar", "apply", "install", "args")
REMOTE = "/var/lib/infranode/salt"
PACKAGES = (("salt-minion",), ("salt-common",))


def _options(config: ProvisionerConfig) -> Options:
    opts = Options(NAME, config)
    opts.check_known(OPTIONS)
    return opts


def validate(config: ProvisionerConfig) -> None:
    opts = _options(config)
    if opts.get("states") is None:
        raise opts.error(
            "states", "`states` is required", "write `states: salt` (the directory with top.sls)"
        )
    opts.path("states", directory=True)
    opts.path("pillar", directory=True)
    opts.strings("apply")
    opts.boolean("install", True)
    opts.strings("args")


def call_argv(salt_call: str, config: ProvisionerConfig) -> list[str]:
    """The masterless salt-call command line (argv list). Pure."""
    opts = _options(config)
    argv = [
        salt_call,
        "--local",
        "--retcode-passthrough",
        "--out=json",
        f"--file-root={REMOTE}/states",
        f"--pillar-root={REMOTE}/pillar",
        *opts.strings("args"),
        "state.apply",
    ]
    states = opts.strings("apply")
    return [*argv, ",".join(states)] if states else argv


def changed_states(output: str) -> list[str]:
    """``changed: <state id>`` plus its changes for each state that changed something. Pure."""
    start = output.find("{")
    if start < 0:
        return []
    try:
        data: Any = json.loads(output[start:])
    except json.JSONDecodeError:
        return []
    changes = []
    for results in data.values() if isinstance(data, dict) else []:
        if not isinstance(results, dict):
            continue
        for key, state in sorted(results.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
            if isinstance(state, dict) and state.get("changes"):
                name = state.get("__id__") or key
                detail = json.dumps(state["changes"], indent=2, sort_keys=True)
                changes.append(f"changed: {name} ({key.split('_|-')[0]})\n{detail}")
    return changes


@final
class SaltProvisioner:
    """Copies the state and pillar trees into the node and runs ``salt-call --local`` there."""

    name = NAME

    def check(self, config: ProvisionerConfig) -> None:
        validate(config)

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        validate(config)
        opts = _options(config)
        try:
            salt_call = ensure_in_node(
                node,
                output,
                provisioner=NAME,
                tools=("salt-call",),
                packages=PACKAGES,
                install=opts.boolean("install", True),
                fix="use a platform whose image or packages have Salt, or add Salt's repository "
                "(packages.broadcom.com/saltproject) in the platform's prepare steps",
            )
        except ConvergeError as err:
            output(f"{err}\n".encode())
            return ConvergeResult(127, str(err))
        states = opts.path("states", directory=True)
        assert states is not None
        files = tree_files(states, "states/")
        pillar = opts.path("pillar", directory=True)
        files.update(tree_files(pillar, "pillar/") if pillar else {"pillar/top.sls": (b"{}\n", 0o644)})
        in_node(node, ["rm", "-rf", REMOTE], output)
        node.put_files(REMOTE, files)
        collected: list[bytes] = []

        def sink(chunk: bytes) -> None:
            collected.append(chunk)
            output(chunk)

        code = in_node(node, call_argv(salt_call, config), sink)
        text = b"".join(collected).decode("utf-8", "replace")
        changes = changed_states(text)
        return ConvergeResult(code, text, changed=bool(changes), changes=tuple(changes))


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [SaltProvisioner()]
