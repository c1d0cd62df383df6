"""Helpers shared by the built-in provisioners: option checks, runner tools, subprocess streaming.

Pure apart from file checks, ``shutil.which`` and :func:`run_streaming`. No Docker here: what
reaches a node goes through :class:`~pytest_infranode.node.Node`.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import final

from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import SettingsError
from pytest_infranode.interrupt import stopping
from pytest_infranode.projectfiles import FileRule
from pytest_infranode.projectfiles import check_path
from pytest_infranode.projectfiles import walk
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.yamltext import QUOTE
from pytest_infranode.yamltext import as_text
from pytest_infranode.yamltext import first_not_text
from pytest_infranode.yamltext import shown

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""An environment variable's name (POSIX): what `env:` keys and Puppet's facts become."""
VARIABLE_NAME = ENV_NAME
"""A variable of Ansible, pyinfra or Puppet (``extra_vars``, ``data``, ``facts``): an identifier."""
USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
"""A user (or uid) the daemon runs a command as: a POSIX name of at most 32 characters, no ``-``
first, as ``useradd`` allows; ``user:group`` is two of them."""
LONGEST = 200
"""How much of a refused value a message shows."""


def clipped(text: str) -> str:
    """``text`` as a message shows it: its repr, cut to :data:`LONGEST` characters."""
    return repr(text) if len(text) <= LONGEST else repr(text[:LONGEST]) + f"... ({len(text)} characters)"


def user_problem(value: str) -> str:
    """What is wrong with ``value`` as a user to run as (``user``, ``uid``, ``user:group``), or ''."""
    if all(USER_NAME.fullmatch(part) for part in value.split(":", 1)):
        return ""
    return (
        f"{clipped(value)} is no user name: a user, uid or user:group of letters, digits, `_`, `.` "
        "and `-` (not first), at most 32 characters each"
    )


def env_problem(name: str, value: str) -> str:
    """What is wrong with ``name=value`` as an environment variable, or ''."""
    if not ENV_NAME.fullmatch(name):
        return f"{clipped(name)} is no environment variable name (letters, digits and `_`, not a digit first)"
    if "\0" in value:
        return f"the value of {name} holds a NUL byte, which no environment can carry"
    return ""


@final
@dataclass(frozen=True, slots=True)
class Options:
    """A provisioner's options, read with checks that name the setting at fault."""

    provisioner: str
    config: ProvisionerConfig

    def where(self, key: str = "") -> str:
        return self.config.source.where(f"provisioner.{key}" if key else "provisioner")

    def error(self, key: str, what: str, fix: str = "") -> SettingsError:
        return SettingsError(f"{self.provisioner} provisioner: {what}", where=self.where(key), fix=fix)

    def check_known(self, known: Sequence[str]) -> None:
        for key in self.config.options:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                raise self.error(
                    str(key),
                    f"unknown option {key!r}",
                    (f"did you mean {close[0]!r}? " if close else "") + f"Options: {', '.join(known)}",
                )

    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.options.get(key, default)
        return default if value is None else value

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(key, f"`{key}` must be a string, not {type(value).__name__}")
        if value is not None and not value.strip():
            raise self.error(key, f"`{key}` is empty", f"give a value, or remove `{key}:`")
        return value

    def user(self, key: str = "user") -> str | None:
        """A user to run as, checked to be a name (no option, no shell words, no huge text)."""
        value = self.string(key)
        problem = user_problem(value) if value is not None else ""
        if problem:
            raise self.error(key, f"`{key}`: {problem}", "write a user the node has, e.g. `user: app`")
        return value

    def names(self, key: str) -> dict[str, Any]:
        """A mapping whose keys are variable names (``extra_vars``, ``data``, ``facts``)."""
        value = self.mapping(key)
        bad = next((k for k in value if not VARIABLE_NAME.fullmatch(k)), None)
        if bad is not None:
            raise self.error(
                f"{key}.{bad}",
                f"`{key}` names {clipped(bad)}, which is no variable name",
                "use letters, digits and `_`, not a digit first",
            )
        return value

    def texts(self, key: str) -> dict[str, str]:
        """``key`` as variable names to text (integers written as digits), as :meth:`env`."""
        value = self.names(key)
        bad = next((k for k, v in value.items() if as_text(v) is None), None)
        if bad is not None:
            raise self.error(
                f"{key}.{bad}", f"`{key}.{bad}` must be a string, not {shown(value[bad])}", QUOTE
            )
        return {k: str(v) for k, v in value.items()}

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"`{key}` must be true or false, not {value!r}")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.get(key, [])
        if isinstance(value, str) and not value.strip():
            raise self.error(key, f"`{key}` is empty", f"give a value, or remove `{key}:`")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and None not in value and first_not_text(value) is None:
            if any(not str(v).strip() for v in value):
                raise self.error(key, f"`{key}` holds an empty string", f"remove it from `{key}:`")
            return [str(v) for v in value]
        if isinstance(value, list):
            bad = None if None in value else first_not_text(value)
            raise self.error(key, f"`{key}` must be a list of strings, but holds {shown(bad)}", QUOTE)
        raise self.error(key, f"`{key}` must be a string or a list of strings")

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(
                key, f"`{key}` must be a mapping, not {type(value).__name__}", "write `key: value` pairs"
            )
        return {str(k): v for k, v in value.items()}

    def env(self, key: str = "env") -> dict[str, str]:
        """``key`` as environment variables: names to strings (integers written as digits)."""
        env = self.mapping(key)
        bad = next((k for k, v in env.items() if as_text(v) is None), None)
        if bad is not None:
            raise self.error(f"{key}.{bad}", f"`{key}.{bad}` must be a string, not {shown(env[bad])}", QUOTE)
        text = {k: str(v) for k, v in env.items()}
        for name, value in text.items():
            problem = env_problem(name, value)
            if problem:
                raise self.error(
                    f"{key}.{name}", f"`{key}`: {problem}", "write `NAME: value`, e.g. `APP_PORT: '8080'`"
                )
        return text

    def path(
        self, key: str, *, required: bool = False, directory: bool = False, into_node: bool = False
    ) -> Path | None:
        """A file (or directory) named by option ``key``, relative to the configuration file.

        A file is checked by the rule of :mod:`~pytest_infranode.projectfiles` (a regular file
        inside the project); a directory too, and every file in it, when ``into_node`` says that
        its files are copied into the node. A directory handed to a runner-side tool as a search
        path (Ansible's ``roles_path``) is only checked to be a directory.
        """
        name = self.string(key)
        if name is None:
            if required:
                raise self.error(key, f"`{key}` is required", f"write `{key}: <path>` under `provisioner:`")
            return None
        return self.resolve(key, name, directory=directory, into_node=into_node)

    def paths(self, key: str, *, directory: bool = False, into_node: bool = False) -> list[Path]:
        return [
            self.resolve(key, name, directory=directory, into_node=into_node) for name in self.strings(key)
        ]

    def resolve(self, key: str, name: str, *, directory: bool = False, into_node: bool = False) -> Path:
        path = Path(name) if Path(name).is_absolute() else self.config.base_dir / name
        # Only whether it is there: what it is (a FIFO, a device, a symlink leaving the project)
        # is for check_path to say.
        exists = path.is_dir() if directory and not into_node else path.exists()
        kind = "directory" if directory else "file"
        if not exists:
            raise SettingsError(
                f"{self.provisioner} provisioner: {kind} {name!r} does not exist",
                where=self.where(key) + f" (looked at {path})",
                fix="paths are relative to the directory of the configuration file",
            )
        if directory and not into_node:
            return path
        return check_path(
            path,
            self.config.file_rule,
            what=f"{self.provisioner} provisioner: {kind} {name!r}",
            where=self.where(key),
            directory=directory,
        )


def find_tool(tool: str) -> str | None:
    """A runner program: next to the running Python first (an unactivated venv), then PATH."""
    beside = Path(sys.executable).parent / tool
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(tool)


def require_tool(provisioner: str, tool: str, install: str) -> str:
    """The path of ``tool`` on the runner, or a SettingsError saying how to install it."""
    found = find_tool(tool)
    if found is None:
        raise SettingsError(
            f"the {provisioner} provisioner needs `{tool}` on the runner (the machine running pytest), "
            "and it is not installed",
            where=f"runner: not in {Path(sys.executable).parent} nor on PATH",
            fix=f"install it into the environment that runs pytest: {install}",
        )
    return found


def run_streaming(
    argv: Sequence[str],
    output: OutputSink,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run a runner-side program, streaming its combined output to ``output`` (an
    :class:`~pytest_infranode.provisioners.base.OutputTail` keeps its end); its exit status.

    It runs in a process group of its own, killed whole when the session is interrupted (its
    workers, which hold the output pipe too, with it).
    """
    with (
        subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        ) as proc,
        stopping(lambda: os.killpg(proc.pid, signal.SIGKILL)),
    ):
        assert proc.stdout is not None
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            output(chunk)
        return proc.wait()


def tree_files(root: Path, prefix: str = "", rule: FileRule | None = None) -> dict[str, tuple[bytes, int]]:
    """Every regular file under ``root`` as ``relative name -> (content, mode)``, for put_files;
    each checked again by ``rule`` (inside ``root`` when None) just before it is read.

    :raises SettingsError: an entry outside the project, or not a regular file.
    """
    files: dict[str, tuple[bytes, int]] = {}
    checked = rule if rule is not None else FileRule(root)
    for path in walk(root, checked, what=f"directory {root}", where=str(root)):
        name = path.relative_to(root).as_posix()
        files[f"{prefix}{name}"] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return files


def docker_host_for_tools(node: Node) -> str | None:
    """The daemon address a runner-side tool should use to reach ``node``.

    None means "discover it the same way": DOCKER_HOST is inherited by the tool's process, and
    the default socket is the default there too. Only an explicit ``--infra-docker-host`` must
    be passed on.
    """
    info = getattr(node.engine, "info", None)
    if info is not None and getattr(info, "source", "") == "--infra-docker-host":
        return str(info.endpoint)
    return None


def unknown_user(node: Node, user: str) -> str:
    """The name of ``user`` (``name`` or ``name:group``) when ``node`` has no passwd entry for it,
    else "" (it exists, it is a uid, which needs none, or the node has no ``id`` to ask). Asked
    as root, after a failure: Docker answers an exec as an unknown user with status 126."""
    name = user.split(":", 1)[0]
    if not name or name.isdigit():
        return ""
    try:
        found = node.run_argv(["id", "-u", "--", name])
    except InfranodeError:
        return ""
    return name if found.exit_status == 1 else ""  # 0: it exists; 126/127: no `id` to ask


def in_node(node: Node, argv: Sequence[str], output: OutputSink, **kwargs: Any) -> int:
    """Run ``argv`` in the node with a ``$ command`` header; its exit status."""
    output(f"$ {' '.join(argv)}\n".encode())
    return node.run_argv(argv, on_output=output, **kwargs).exit_status
