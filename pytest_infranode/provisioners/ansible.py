"""The ansible provisioner: ansible-playbook on the runner, reaching the node through the Docker API.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: ansible
      playbook: site.yml            # required; relative to the configuration file
      prepare: prepare.yml          # optional; run first, not part of the idempotence check
      groups: [web]                 # groups every node joins; or {web: [debian-12, rhel]}
      host_vars: {debian-12: {http_port: 8080}}   # per platform name
      group_vars: {all: {site: demo}, web: {workers: 2}}
      extra_vars: {release: "1.2"}  # -e, highest precedence
      roles_path: roles             # or a list; ANSIBLE_ROLES_PATH
      become: true                  # ansible_become for the node
      user: deploy                  # ansible_user (default: the image's user, root)
      config: ansible.cfg           # ANSIBLE_CONFIG
      env: {ANSIBLE_FORKS: "1"}     # environment of ansible-playbook
      args: ["--tags", "web"]       # extra ansible-playbook arguments
      idempotence_skip_tags: [molecule-idempotence-notest]  # --skip-tags in the second converge only

No sshd and no docker CLI: the inventory uses the ``infranode`` connection plugin shipped in
``ansible_plugins/connection/``, which runs commands and copies files through pytest-infranode's
engine (the Docker SDK). The inventory host is named after the platform (``debian-12``), or
after the node for named nodes (``nodes: {web: …}``); ``host_vars`` are keyed by that name.

"Changed" is Ansible's own: a task reported ``changed``. The ``infranode_changes`` callback
records each changed task; a node's second converge (the idempotence check) runs with
``--diff`` so each change is shown with its diff.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import final

from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import docker_host_for_tools
from pytest_infranode.provisioners._common import require_tool
from pytest_infranode.provisioners._common import run_streaming
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import command_step
from pytest_infranode.provisioners.base import option_paths

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

NAME = "ansible"
OPTIONS = (
    "playbook",
    "prepare",
    "groups",
    "host_vars",
    "group_vars",
    "extra_vars",
    "roles_path",
    "become",
    "user",
    "config",
    "env",
    "args",
    "idempotence_skip_tags",
)
TOOL = "ansible-playbook"
INSTALL = "pip install 'pytest-infranode[ansible]' (or: pip install ansible-core)"
PLAYBOOK_SIBLINGS = (
    "roles",
    "group_vars",
    "host_vars",
    "library",
    "filter_plugins",
    "module_utils",
    "templates",
    "files",
    "vars",
    "tasks",
    "handlers",
    "ansible.cfg",
    "requirements.yml",
)
"""What a playbook reads from its own directory: inputs of the converge cache's key."""
PLUGINS = Path(__file__).parent / "ansible_plugins"
CHANGES_ENV = "INFRANODE_ANSIBLE_CHANGES"


def _options(config: ProvisionerConfig) -> Options:
    opts = Options(NAME, config)
    opts.check_known(OPTIONS)
    return opts


def validate(config: ProvisionerConfig) -> None:
    """Check every option and the files they name (raises SettingsError). Pure apart from files."""
    opts = _options(config)
    opts.path("playbook", required=True)
    opts.path("prepare")
    opts.path("config")
    opts.paths("roles_path", directory=True)
    _groups(opts)
    for key in ("host_vars", "group_vars"):
        for name, value in opts.mapping(key).items():
            if not isinstance(value, dict):
                raise opts.error(f"{key}.{name}", f"`{key}.{name}` must be a mapping of variables")
    opts.mapping("extra_vars")
    opts.boolean("become")
    opts.string("user")
    opts.env()
    opts.strings("args")
    opts.strings("idempotence_skip_tags")


def _groups(opts: Options) -> dict[str, list[str]]:
    """``group -> platform names or families`` (``["all"]`` for "every node")."""
    value = opts.get("groups", [])
    if isinstance(value, (str, list)):
        return {g: ["all"] for g in opts.strings("groups")}
    if isinstance(value, dict):
        groups: dict[str, list[str]] = {}
        for group, members in value.items():
            if isinstance(members, str):
                members = [members]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise opts.error(f"groups.{group}", f"members of group {group!r} must be platform names")
            groups[str(group)] = list(members)
        return groups
    raise opts.error("groups", "`groups` must be a list of group names, or a mapping of group to platforms")


def inventory(
    config: ProvisionerConfig, node: Node, *, docker_host: str | None, prepare: bool = False
) -> dict[str, Any]:
    """The generated inventory for one node (YAML inventory structure). Pure.

    For the prepare playbook, ``user`` and ``become`` are left out: it runs as the image's
    user (root) and makes the node ready for them (users, sudo rules).
    """
    opts = _options(config)
    # Named nodes (``nodes:``) are inventory hosts by their short name; else the platform's.
    host = getattr(node, "short_name", "") or node.platform.name
    names = {host, node.platform.name, node.platform.family, *node.platform.aliases, "all"}
    hostvars: dict[str, Any] = {
        "ansible_connection": "infranode",
        "ansible_host": node.container_id,
        "ansible_python_interpreter": "auto_silent",
    }
    if docker_host:
        hostvars["ansible_infranode_docker_host"] = docker_host
    user = opts.string("user")
    if user and not prepare:
        hostvars["ansible_user"] = user
    if "become" in config.options and not prepare:
        hostvars["ansible_become"] = opts.boolean("become")
    hostvars.update(opts.mapping("host_vars").get(host, {}))
    group_vars = opts.mapping("group_vars")
    children: dict[str, Any] = {}
    for group, members in _groups(opts).items():
        children[group] = {"hosts": {host: None} if names & set(members) else {}}
    for group, variables in group_vars.items():
        if group != "all":
            children.setdefault(group, {"hosts": {}})["vars"] = variables
    return {
        "all": {
            "hosts": {host: hostvars},
            "vars": group_vars.get("all", {}),
            "children": children,
        }
    }


def playbook_argv(
    tool: str,
    playbook: Path,
    inventory_path: Path,
    *,
    extra_vars_path: Path | None,
    diff: bool,
    args: list[str],
) -> list[str]:
    """The ansible-playbook command line (an argv list, no shell). Pure."""
    argv = [tool, "-i", str(inventory_path)]
    if extra_vars_path is not None:
        argv += ["-e", f"@{extra_vars_path}"]
    if diff:
        argv.append("--diff")
    return [*argv, *args, str(playbook)]


def converge_args(config: ProvisionerConfig, *, again: bool) -> list[str]:
    """The user's ``args``; in the idempotence check's converge, ``--skip-tags`` for each tag of
    ``idempotence_skip_tags`` too (Molecule's ``molecule-idempotence-notest``). Pure.

    ``--skip-tags`` may be given more than once: ansible-playbook skips every tag named.
    """
    opts = _options(config)
    args = opts.strings("args")
    skip = opts.strings("idempotence_skip_tags")
    if again and skip:
        args += ["--skip-tags", ",".join(skip)]
    return args


def playbook_env(config: ProvisionerConfig, work: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment of ansible-playbook: our plugins, no colours, the user's settings. Pure."""
    opts = _options(config)
    env = dict(base)
    enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
    env.update(
        {
            "ANSIBLE_CONNECTION_PLUGINS": os.pathsep.join(
                [str(PLUGINS / "connection"), *filter(None, [base.get("ANSIBLE_CONNECTION_PLUGINS")])]
            ),
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(
                [str(PLUGINS / "callback"), *filter(None, [base.get("ANSIBLE_CALLBACK_PLUGINS")])]
            ),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join([*enabled, "infranode_changes"]),
            "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PYTHONUNBUFFERED": "1",
            CHANGES_ENV: str(work / "changes.jsonl"),
        }
    )
    roles = opts.paths("roles_path", directory=True)
    if roles:
        env["ANSIBLE_ROLES_PATH"] = os.pathsep.join(str(p) for p in roles)
    cfg = opts.path("config")
    if cfg is not None:
        env["ANSIBLE_CONFIG"] = str(cfg)
    env.update(opts.env())
    return env


def read_changes(path: Path) -> list[str]:
    """Changed tasks recorded by the callback, as ``task (action)`` plus the diff. Pure."""
    if not path.is_file():
        return []
    changes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        text = f"changed: {entry['task']} ({entry['action']})"
        if entry.get("diff"):
            text += "\n" + str(entry["diff"]).rstrip("\n")
        changes.append(text)
    return changes


#: The task, play and handler headers of ansible-playbook's output: the step it is at.
STEP = re.compile(r"(?:TASK|PLAY|RUNNING HANDLER) \[.*?\]")


@final
class AnsibleProvisioner:
    """Runs ansible-playbook on the runner against the node."""

    name = NAME
    tools = ("ansible-core", "ansible")
    """Their versions are part of the converge cache's key."""

    def check(self, config: ProvisionerConfig) -> None:
        validate(config)
        require_tool(NAME, TOOL, INSTALL)

    def step_of(self, line: str) -> str | None:
        """``TASK [web : Install nginx]`` (the stars after it cut), or a ``$ command`` header."""
        found = STEP.match(line)
        return found.group(0) if found else command_step(line)

    def inputs(self, config: ProvisionerConfig) -> list[Path]:
        """The files the options name, and the roles, vars and plugins next to each playbook."""
        found = option_paths(config)
        for playbook in [p for p in found if p.is_file()]:
            found += [playbook.parent / s for s in PLAYBOOK_SIBLINGS if (playbook.parent / s).exists()]
        return found

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        validate(config)
        opts = _options(config)
        tool = require_tool(NAME, TOOL, INSTALL)
        again = node.converge_round > 1
        with tempfile.TemporaryDirectory(prefix="infranode-ansible-") as tmp:
            work = Path(tmp)
            (work / "tmp").mkdir()
            docker_host = docker_host_for_tools(node)
            inventory_path = work / "inventory.yml"
            prepare_inventory_path = work / "prepare-inventory.yml"
            # JSON is YAML: the yaml inventory plugin reads it.
            inventory_path.write_text(json.dumps(inventory(config, node, docker_host=docker_host), indent=2))
            prepare_inventory_path.write_text(
                json.dumps(inventory(config, node, docker_host=docker_host, prepare=True), indent=2)
            )
            extra = opts.mapping("extra_vars")
            extra_path = None
            if extra:
                extra_path = work / "extra_vars.json"
                extra_path.write_text(json.dumps(extra))
            env = playbook_env(config, work, dict(os.environ))
            outputs: list[str] = []
            prepare = opts.path("prepare")
            if prepare is not None and not again:
                argv = playbook_argv(
                    tool, prepare, prepare_inventory_path, extra_vars_path=extra_path, diff=False, args=[]
                )
                output(f"$ {' '.join(argv)}\n".encode())
                status, text = run_streaming(argv, output, env=env, cwd=config.base_dir)
                outputs.append(text)
                if status != 0:
                    return ConvergeResult(status, "".join(outputs))
                (work / "changes.jsonl").unlink(missing_ok=True)
            playbook = opts.path("playbook", required=True)
            assert playbook is not None
            argv = playbook_argv(
                tool,
                playbook,
                inventory_path,
                extra_vars_path=extra_path,
                diff=again,
                args=converge_args(config, again=again),
            )
            output(f"$ {' '.join(argv)}\n".encode())
            status, text = run_streaming(argv, output, env=env, cwd=config.base_dir)
            outputs.append(text)
            changes = read_changes(work / "changes.jsonl")
        return ConvergeResult(status, "".join(outputs), changed=bool(changes), changes=tuple(changes))


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [AnsibleProvisioner()]
