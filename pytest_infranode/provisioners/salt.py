"""The salt provisioner: masterless ``salt-call --local`` with state and pillar trees copied in.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: salt
      states: salt                  # required; the file_roots tree (top.sls, *.sls)
      pillar: pillar                # optional; the pillar_roots tree
      apply: [web]                  # state names; default: the highstate (top.sls)
      install: true                 # if missing: the platform's packages (true or `packages`);
                                    # `pip` (see below), or false (never install)
      version: "3007.14"            # the Salt release pip installs
      args: ["-l", "warning"]       # extra salt-call arguments

Trees go in through the Docker API (``/var/lib/infranode/salt``). Debian 12 and 13 no longer
ship Salt and Salt's own repository is a vendor download, so where the platform's packages have
no Salt, ``install: pip`` pip-installs it from PyPI into a virtual environment,
``/opt/infranode-salt``. Salt's
sdist declares no dependencies: its own ``requirements/base.txt`` and ``zeromq.txt`` are
installed first. pip in the node uses the runner's ``PIP_INDEX_URL`` and ``PIP_CERT`` (the CA
file is copied in).

"Changed" is Salt's own: a state whose result carries ``changes``; salt-call prints JSON
(``--out=json``) and each changed state is reported with its changes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import TYPE_CHECKING
from typing import Any
from typing import final

from pytest_infranode.errors import ConvergeError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import clipped
from pytest_infranode.provisioners._common import in_node
from pytest_infranode.provisioners._common import tree_files
from pytest_infranode.provisioners._innode import ensure_in_node
from pytest_infranode.provisioners._innode import find_in_node
from pytest_infranode.provisioners._innode import install_command
from pytest_infranode.provisioners._innode import pip_env
from pytest_infranode.provisioners._innode import venv_script
from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.yamltext import as_text
from pytest_infranode.yamltext import shown

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

NAME = "salt"
SALT_RELEASE = re.compile(r"\d{4}(\.\d{1,3}){0,2}(rc\d{1,2})?")
"""A Salt release pip can install: ``3007``, ``3007.14``, ``3006.9``, ``3007.0rc1``."""
OPTIONS = ("states", "pillar", "apply", "install", "version", "args")
REMOTE = "/var/lib/infranode/salt"
PACKAGES = (("salt-minion",), ("salt-common",))
VENV = "/opt/infranode-salt"
#: Measured on debian-12 (Python 3.11) and debian-13 (Python 3.13) from PyPI. Salt before
#: 3007.14 cannot find any state file on Python 3.13: its ``salt.utils.url.create`` cut
#: ``file:///`` off what ``urlunparse`` returned, and 3.13's ``urlunparse`` returns
#: ``file:top.sls``, so the top file was looked up as ``salt://s`` (``No Top file or
#: master_tops data matches found``).
PIP_VERSION = "3007.14"
INSTALL_CHOICES = (True, False, "packages", "pip")


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
    opts.path("states", directory=True, into_node=True)
    opts.path("pillar", directory=True, into_node=True)
    opts.strings("apply")
    install_mode(opts)
    salt_version(opts)
    opts.strings("args")


def salt_version(opts: Options) -> str:
    """``version:`` as the release pip installs: text as written (``3007.10`` unquoted would be
    YAML's float 3007.1), digits and dots (``3007.14``, ``3006.9``, ``3007.0rc1``)."""
    value = opts.get("version", PIP_VERSION)
    text = as_text(value)
    if text is None or not SALT_RELEASE.fullmatch(text):
        shown_value = shown(value) if text is None else clipped(text)
        raise opts.error(
            "version",
            f'`version` must be a Salt release such as "{PIP_VERSION}", not {shown_value}',
            f'quote it: `version: "{PIP_VERSION}"` (unquoted, YAML reads 3007.10 as 3007.1)',
        )
    return text


def install_mode(opts: Options) -> bool | str:
    value = opts.get("install", True)
    if value not in INSTALL_CHOICES or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        raise opts.error(
            "install",
            f"`install` must be true, false, packages or pip, not {value!r}",
            "write `install: pip`",
        )
    return value  # type: ignore[no-any-return]


#: What compiling Salt's C dependencies (timelib has no wheel for every Python) needs.
BUILD_PACKAGES = {
    "apt": ("gcc", "python3-dev"),
    "dnf": ("gcc", "python3-devel"),
    "zypper": ("gcc", "python3-devel"),
    "pacman": ("gcc",),
    "apk": ("gcc", "musl-dev", "python3-dev"),
}


def pip_steps(version: str, manager: str = "apt") -> list[str]:
    """Shell lines that pip-install Salt ``version`` into :data:`VENV`. Pure.

    Salt's sdist declares no dependencies. Its pinned requirements for the node's Python
    (``requirements/static/pkg/py3.X/linux.txt``, ``linux.lock`` in later releases, else
    ``requirements/base.txt``) do; one of them (timelib) is compiled where no wheel exists,
    hence the compiler.
    """
    pip = f"{VENV}/bin/pip"
    sdist = "/tmp/infranode-salt-sdist"
    tree = f"{sdist}/salt-{shlex.quote(version)}"
    return [
        install_command(manager, BUILD_PACKAGES.get(manager, ("gcc",))) or "true",
        f"rm -rf {sdist}",
        f"{pip} download -q --no-deps --no-binary :all: salt=={shlex.quote(version)} -d {sdist}",
        f"tar -xzf {tree}.tar.gz -C {sdist}",
        "py=$(python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])')",
        f"reqs={tree}/requirements/static/pkg/py$py/linux.txt",
        f'[ -f "$reqs" ] || reqs={tree}/requirements/static/pkg/py$py/linux.lock',
        f'[ -f "$reqs" ] || reqs={tree}/requirements/base.txt',
        f'{pip} install --progress-bar off -r "$reqs"',
        f"{pip} install --progress-bar off --no-deps {tree}.tar.gz",
        f"rm -rf {sdist}",
    ]


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


RESULT_BYTES = 8 * 1024 * 1024
"""How much of the end of salt-call's output is kept to read its JSON answer from (the answer
comes last, after Salt's own log lines); a longer answer cannot be read, and the result says so."""
REASON_CHARS = 400
_BLANK = re.compile(r"\s*")


def pip_error(line: str, errors: list[str]) -> None:
    """Keep pip's own ``ERROR:`` lines (the last few), for the reason of a failed install."""
    if line.startswith("ERROR: "):
        errors.append(_short(line[len("ERROR: ") :]))
        del errors[:-3]


def salt_answer(output: str) -> Any:
    """The JSON document salt-call printed (``--out=json``) after its log lines, or None. Pure."""
    decoder = json.JSONDecoder()
    start = output.find("{")
    while start >= 0:
        try:
            data, end = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            start = output.find("{", start + 1)
            continue
        if isinstance(data, dict) and _BLANK.match(output, end).end() == len(output):  # type: ignore[union-attr]
            return data
        start = output.find("{", end)
    return None


def _states(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every state result of the answer, in the order Salt ran them."""
    found: list[tuple[str, dict[str, Any]]] = []
    for results in data.values() if isinstance(data, dict) else []:
        if isinstance(results, dict):
            found += [(k, v) for k, v in results.items() if isinstance(v, dict)]
    return sorted(found, key=lambda kv: kv[1].get("__run_num__", 0))


def changed_states(output: str) -> list[str]:
    """``changed: <state id>`` plus its changes for each state that changed something. Pure."""
    return list(_changes(salt_answer(output)))


def _changes(data: Any) -> ChangeList:
    changes = ChangeList()
    for key, state in _states(data):
        if state.get("changes"):
            name = state.get("__id__") or key
            detail = json.dumps(state["changes"], indent=2, sort_keys=True)
            changes.add(f"changed: {name} ({key.split('_|-')[0]})\n{detail}")
    return changes


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def failure_reason(output: str) -> str:
    """Why salt-call failed, in Salt's own words, for the converge error's first line. Pure.

    Its answer is either a list of messages (``No Top file or master_tops data matches found``,
    a render error) or the states, some with ``result: false`` and a comment; without an answer
    (Salt itself did not start), its last line of output (a Python error, an option error)."""
    data = salt_answer(output)
    if data is None:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return f"salt-call said: {_short(lines[-1])}" if lines else ""
    messages = [m for v in data.values() if isinstance(v, list) for m in v if isinstance(m, str)]
    if messages:
        return f"Salt said: {_short('; '.join(messages))}"
    failed = [(k, v) for k, v in _states(data) if v.get("result") is False]
    if not failed:
        return ""
    key, state = failed[0]
    parts = key.split("_|-")
    if parts[0] == "no":  # Salt's stand-in for "no state to run" (no top file match, say)
        return f"Salt said: {_short(state.get('comment', ''))}"
    name = state.get("__id__") or (parts[1] if len(parts) > 1 else key)
    more = f" (and {len(failed) - 1} more failed state(s))" if len(failed) > 1 else ""
    return f"Salt state {name} ({parts[0]}) failed: {_short(state.get('comment', ''))}{more}"


def read_answer(tail: OutputTail, code: int) -> ConvergeResult:
    """The result of salt-call from the kept end of its output: its changes, and when it failed,
    why (Salt's words). An answer too large to keep cannot be read: then ``changed`` is None."""
    text = tail.text
    data = salt_answer(text)
    reason = failure_reason(text) if code else ""
    if data is None and tail.dropped:
        note = (
            f"salt-call printed {tail.total} bytes; its JSON answer is not within the last {RESULT_BYTES} "
            "bytes infranode keeps, so what it changed cannot be read (the converge log has it)"
        )
        return tail.result(code, changed=None, changes=(note,), reason=reason)
    changes = _changes(data)
    return tail.result(code, changed=bool(changes), changes=changes, reason=reason)


@final
class SaltProvisioner:
    """Copies the state and pillar trees into the node and runs ``salt-call --local`` there."""

    name = NAME

    def check(self, config: ProvisionerConfig) -> None:
        validate(config)

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        validate(config)
        opts = _options(config)
        mode = install_mode(opts)
        try:
            salt_call = find_in_node(node, (f"{VENV}/bin/salt-call",)) if mode == "pip" else None
            if salt_call is None and mode != "pip":
                salt_call = ensure_in_node(
                    node,
                    output,
                    provisioner=NAME,
                    tools=("salt-call", f"{VENV}/bin/salt-call"),
                    packages=PACKAGES,
                    install=mode is not False,
                    fix="use a platform whose image or packages have Salt, or `install: pip`, "
                    "or add Salt's repository in the platform's prepare steps",
                )
        except ConvergeError as err:
            output(f"{err}\n".encode())
            return ConvergeResult(127, str(err))
        if salt_call is None:
            version = salt_version(opts)
            manager = node.platform.package_manager
            script = venv_script(VENV, manager, pip_steps(version, manager))
            env = pip_env(node, dict(os.environ))
            errors: list[str] = []
            install = OutputTail(output, on_line=lambda line: pip_error(line, errors))
            code = in_node(node, ["/bin/sh", "-c", script], install, env=env)
            salt_call = find_in_node(node, (f"{VENV}/bin/salt-call",)) if code == 0 else None
            if salt_call is None:
                said = f": pip said: {errors[-1]}" if errors else ""
                failure = ConvergeError(
                    f"the salt provisioner could not pip-install Salt {version} into {VENV} "
                    f"(exit status {code}){said}",
                    where=node.where,
                    fix="check that the node reaches PyPI (PIP_INDEX_URL and PIP_CERT on the runner are "
                    "passed on), or set `version:` to a Salt release that installs on this platform",
                )
                output(f"{failure}\n".encode())
                reason = f"pip could not install Salt {version}{said}"
                return ConvergeResult(code or 127, install.text + f"{failure}\n", reason=reason)
        states = opts.path("states", directory=True)
        assert states is not None
        files = tree_files(states, "states/", config.file_rule)
        pillar = opts.path("pillar", directory=True)
        files.update(
            tree_files(pillar, "pillar/", config.file_rule)
            if pillar
            else {"pillar/top.sls": (b"{}\n", 0o644)}
        )
        in_node(node, ["rm", "-rf", REMOTE], output)
        node.put_files(REMOTE, files)
        collected = OutputTail(output, max_bytes=RESULT_BYTES)
        code = in_node(node, call_argv(salt_call, config), collected)
        return read_answer(collected, code)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [SaltProvisioner()]
