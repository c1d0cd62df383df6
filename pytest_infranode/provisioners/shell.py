"""The shell provisioner: inline commands and script files, run inside the node.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: shell
      script: converge.sh          # or a list; relative to the configuration file
      inline: ["apt-get update"]   # or a string; run by /bin/sh -c, after the scripts
      env: {SITE_NAME: demo}       # environment of every command
      secret_env: [API_TOKEN]      # passed from the runner's environment, masked in logs
      user: root                   # who runs them (default: the image's user)

Scripts are copied into the node through the Docker API (no bind mounts: remote daemons cannot
see the runner's files) and run in order; the first failing command stops the converge.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import final

from pytest_infranode.errors import SettingsError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.projectfiles import check_path
from pytest_infranode.provisioners._common import env_problem
from pytest_infranode.provisioners._common import unknown_user
from pytest_infranode.provisioners._common import user_problem
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import secret_names
from pytest_infranode.yamltext import QUOTE
from pytest_infranode.yamltext import as_text
from pytest_infranode.yamltext import shown

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

OPTIONS = ("script", "inline", "env", "secret_env", "user")
REMOTE_DIR = "/var/lib/infranode/provision"


def _as_list(value: Any, key: str, config: ProvisionerConfig) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, str):
        raise SettingsError(
            f"shell provisioner: `{key}` is empty",
            where=config.source.where(f"provisioner.{key}"),
            fix=f"give a value, or remove `{key}:`",
        )
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return list(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        raise SettingsError(
            f"shell provisioner: `{key}` holds an empty string",
            where=config.source.where(f"provisioner.{key}"),
            fix=f"remove it from `{key}:`",
        )
    raise SettingsError(
        f"shell provisioner: `{key}` must be a string or a list of strings",
        where=config.source.where(f"provisioner.{key}"),
    )


def _secret_env(config: ProvisionerConfig) -> dict[str, str]:
    names = config.options.get("secret_env", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SettingsError(
            "shell provisioner: `secret_env` must be a list of environment variable names",
            where=config.source.where("provisioner.secret_env"),
            fix="write `secret_env: [API_TOKEN]`; the values come from the runner's environment",
        )
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise SettingsError(
            f"shell provisioner: secret_env names {', '.join(missing)}, not set in the environment",
            where=config.source.where("provisioner.secret_env"),
            fix=f"export {missing[0]}=... before running pytest (in CI: a secret variable)",
        )
    return {n: os.environ[n] for n in secret_names(config)}


def _env(config: ProvisionerConfig) -> dict[str, str]:
    value = config.options.get("env", {})
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise SettingsError(
            "shell provisioner: `env` must be a mapping of names to values",
            where=config.source.where("provisioner.env"),
            fix="write `env: {NAME: value}`",
        )
    env: dict[str, str] = {}
    for name, raw in value.items():
        text = as_text(raw)
        problem = "" if text is not None else f"`env.{name}` must be a string, not {shown(raw)}"
        problem = problem or env_problem(str(name), str(text))
        if problem:
            raise SettingsError(
                f"shell provisioner: {problem}",
                where=config.source.where(f"provisioner.env.{name}"),
                fix=QUOTE if text is None else "write `NAME: value`, e.g. `APP_PORT: '8080'`",
            )
        env[str(name)] = str(text)
    return env


def plan(config: ProvisionerConfig) -> tuple[list[Path], list[str]]:
    """The script files and inline commands to run, validated. Pure apart from file checks."""
    for key in config.options:
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            raise SettingsError(
                f"shell provisioner: unknown option {key!r}",
                where=config.source.where(f"provisioner.{key}"),
                fix=(f"did you mean {close[0]!r}? " if close else "") + f"Options: {', '.join(OPTIONS)}",
            )
    scripts = []
    for name in _as_list(config.options.get("script"), "script", config):
        path = Path(name) if Path(name).is_absolute() else config.base_dir / name
        if not path.exists():  # a directory, a FIFO, a link leaving the project: check_path says
            raise SettingsError(
                f"shell provisioner: script {name!r} does not exist",
                where=config.source.where("provisioner.script") + f" (looked at {path})",
                fix="paths are relative to the directory of the configuration file",
            )
        scripts.append(
            check_path(
                path,
                config.file_rule,
                what=f"shell provisioner: script {name!r}",
                where=config.source.where("provisioner.script"),
            )
        )
    inline = _as_list(config.options.get("inline"), "inline", config)
    if not scripts and not inline:
        raise SettingsError(
            "shell provisioner: nothing to run",
            where=config.source.where("provisioner"),
            fix="give `script: converge.sh` or `inline: [commands]` under `provisioner:`; "
            "for a bare node, remove `provisioner:` (or write `provisioner: none`)",
        )
    _env(config)
    _secret_env(config)
    user = config.options.get("user")
    problem = "" if isinstance(user, str) or user is None else "`user` must be a user name"
    problem = problem or (user_problem(user) if isinstance(user, str) else "")
    if problem:
        raise SettingsError(
            f"shell provisioner: {problem}",
            where=config.source.where("provisioner.user"),
            fix="write a user the node has, e.g. `user: app`",
        )
    return scripts, inline


def script_argv(remote_path: str, content: bytes) -> list[str]:
    """Run a script by its own interpreter line when it has one, else with /bin/sh."""
    if content.startswith(b"#!"):
        return [remote_path]
    return ["/bin/sh", remote_path]


def missing_user(node: Node, user: str, config: ProvisionerConfig) -> str:
    """Why a step run as ``user`` exited with 126 (what Docker answers for a user the node does
    not know, with no output), when that is the reason: the sentence for the converge error, or
    "" when the user exists (or the node cannot tell: no ``id``, a numeric uid)."""
    name = unknown_user(node, user)
    if not name:
        return ""
    return (
        f"user {name!r} does not exist in the node (it has no passwd entry), so no step can run as it "
        f"(`user:` at {config.source.where('provisioner.user')}); create the user first: in the platform's "
        "image (`platform_definitions: {<platform>: {prepare: ['useradd ...']}}`), or run the steps as root "
        "by removing `user:`"
    )


@final
class ShellProvisioner:
    """Runs scripts and inline commands in the node."""

    name = "shell"

    def check(self, config: ProvisionerConfig) -> None:
        plan(config)

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        scripts, inline = plan(config)
        env = {**_env(config), **_secret_env(config)}
        user = config.options.get("user")
        files = {f"{i:02d}-{p.name}": (p.read_bytes(), 0o755) for i, p in enumerate(scripts)}
        if files:
            node.put_files(REMOTE_DIR, files)
        steps = [script_argv(f"{REMOTE_DIR}/{name}", content) for name, (content, _) in files.items()]
        steps += [["/bin/sh", "-c", command] for command in inline]
        sink = OutputTail(output)
        for argv in steps:
            header = f"$ {' '.join(argv)}\n".encode()
            sink(header)
            result = node.run_argv(
                argv, env=env, workdir=REMOTE_DIR if files else None, user=user, on_output=sink
            )
            if result.exit_status != 0:
                reason = missing_user(node, user, config) if result.exit_status == 126 and user else ""
                if reason:
                    sink(f"infranode: {reason}\n".encode())
                return sink.result(result.exit_status, reason=reason)
        return sink.result(0, changed=None)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [ShellProvisioner()]
