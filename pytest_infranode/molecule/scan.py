"""What a scenario's playbooks and testinfra specs rely on, found by reading them (never running
them). Pure apart from reading files.

The import uses this to say, before any node exists, what will not work yet: specs that choose
their own hosts (``testinfra_hosts``), ``host.ansible``, Molecule's variables that exist only
while Molecule runs, and how the converge playbook names the role.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pytest_infranode.molecule.model import Usage

_ENV = re.compile(r"\bMOLECULE_[A-Z_]+\b")
_VARS = re.compile(
    r"\b(molecule_yml|molecule_file|molecule_ephemeral_directory|molecule_scenario_directory|"
    r"molecule_instance_config|molecule_no_log)\b"
)
_CROSS_HOST = re.compile(r"\b(hostvars|delegate_to|run_once)\b|\bgroups\s*(?:\[|\.[a-z_])")
_ROLE_ACTIONS = {
    "include_role",
    "import_role",
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
    "ansible.legacy.include_role",
    "ansible.legacy.import_role",
}


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _first(found: dict[str, Usage], what: str, path: Path, text: str, offset: int) -> None:
    if what not in found:
        found[what] = Usage(what, f"{path}:{_line(text, offset)}")


def scan_specs(paths: Iterable[Path]) -> list[Usage]:
    """``testinfra_hosts``, ``host.ansible`` and ``env:MOLECULE_*`` in testinfra specs."""
    found: dict[str, Usage] = {}
    for path in paths:
        text = _read(path)
        for what, line in _code_uses(text):
            if what not in found:
                found[what] = Usage(what, f"{path}:{line}")
        for match in _ENV.finditer(text):
            _first(found, f"env:{match.group(0)}", path, text, match.start())
    return list(found.values())


def _code_uses(text: str) -> list[tuple[str, int]]:
    """``testinfra_hosts`` assigned at the top of a module, and ``host.ansible``, in code only
    (not in docstrings or comments), with their lines."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type != tokenize.NL]
    except (tokenize.TokenError, SyntaxError):
        return []
    found: list[tuple[str, int]] = []
    for index, token in enumerate(tokens):
        after = tokens[index + 1 : index + 3]
        if token.type != tokenize.NAME or not after:
            continue
        if token.string == "testinfra_hosts" and token.start[1] == 0 and after[0].string in ("=", ":"):
            found.append(("testinfra_hosts", token.start[0]))
        elif token.string == "host" and [t.string for t in after] == [".", "ansible"]:
            found.append(("host.ansible", token.start[0]))
    return found


def scan_playbooks(paths: Iterable[Path]) -> list[Usage]:
    """``env:MOLECULE_*`` lookups, Molecule's inventory variables (``var:molecule_yml``) and the
    roles each playbook applies (``role:NAME``, as written: a template stays a template)."""
    found: dict[str, Usage] = {}
    for path in paths:
        text = _read(path)
        for match in _ENV.finditer(text):
            _first(found, f"env:{match.group(0)}", path, text, match.start())
        for match in _VARS.finditer(text):
            _first(found, f"var:{match.group(1)}", path, text, match.start())
        for name in role_references(text):
            offset = text.find(name)
            _first(found, f"role:{name}", path, text, max(offset, 0))
    return list(found.values())


def scan_cross_host(paths: Iterable[Path]) -> list[Usage]:
    """``cross-host:hostvars`` / ``delegate_to`` / ``run_once`` / ``groups``: what in the playbooks,
    tasks and templates reads or acts on other hosts of the inventory (first use of each)."""
    found: dict[str, Usage] = {}
    for path in paths:
        text = _read(path)
        for match in _CROSS_HOST.finditer(text):
            _first(found, f"cross-host:{match.group(1) or 'groups'}", path, text, match.start())
    return list(found.values())


def role_references(text: str) -> list[str]:
    """Role names a playbook applies: its plays' ``roles:`` and every ``include_role`` /
    ``import_role`` task (in ``block``/``rescue``/``always`` and the play's task lists too)."""
    try:
        plays = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    names: list[str] = []
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        for entry in play.get("roles") or []:
            name = str(entry) if isinstance(entry, str) else _role_of(entry)
            if name and name not in names:
                names.append(name)
        for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            for task in _tasks(play.get(key)):
                for action in _ROLE_ACTIONS & set(task):
                    args = task[action]
                    target = args.get("name") if isinstance(args, dict) else None
                    if isinstance(target, str) and target not in names:
                        names.append(target)
    return names


def _role_of(entry: Any) -> str:
    if isinstance(entry, dict):
        for key in ("role", "name"):
            if isinstance(entry.get(key), str):
                return str(entry[key])
    return ""


def _tasks(value: Any) -> Iterator[dict[str, Any]]:
    for task in value if isinstance(value, list) else []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
