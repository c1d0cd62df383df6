"""The ansible provisioner: ansible-playbook on the runner, reaching the node through the Docker API.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: ansible
      playbook: site.yml            # required; relative to the configuration file
      prepare: prepare.yml          # optional; run first, not part of the idempotence check
      side_effect: side_effect.yml  # optional; run after the converge (and idempotence check)
      verify: verify.yml            # optional; a test per platform, over all its nodes
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
      inventory_links: {group_vars: ../../inventory/group_vars}  # linked next to the inventory

No sshd and no docker CLI: the inventory uses the ``infranode`` connection plugin shipped in
``ansible_plugins/connection/``, which runs commands and copies files through pytest-infranode's
engine (the Docker SDK). The inventory host is named after the platform (``debian-12``), or
after the node for named nodes (``nodes: {web: …}``); ``host_vars`` are keyed by that name.
Named nodes of one platform that share these settings are converged by one run over an
inventory of all of them (:meth:`AnsibleProvisioner.converge_together`, the contract's
``ConvergesTogether``), written to the session's inventory file, which stays.

"Changed" is Ansible's own: a task reported ``changed``. The ``infranode_changes`` callback
records each changed task; a node's second converge (the idempotence check) runs with
``--diff`` so each change is shown with its diff.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import final

from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import clipped
from pytest_infranode.provisioners._common import docker_host_for_tools
from pytest_infranode.provisioners._common import require_tool
from pytest_infranode.provisioners._common import run_streaming
from pytest_infranode.provisioners._common import unknown_user
from pytest_infranode.provisioners._relay import RELAY_ENV
from pytest_infranode.provisioners._relay import ChannelRelay
from pytest_infranode.provisioners.base import ACTIONS
from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import InventoryHost
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import OutputTail
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
    "side_effect",
    "verify",
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
    "inventory_links",
)
LINKABLE = ("group_vars", "host_vars")
"""What ``inventory_links`` may link next to the inventory (Molecule's ``inventory.links``)."""
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
GROUP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _options(config: ProvisionerConfig) -> Options:
    opts = Options(NAME, config)
    opts.check_known(OPTIONS)
    return opts


def validate(config: ProvisionerConfig) -> None:
    """Check every option and the files they name (raises SettingsError). Pure apart from files."""
    opts = _options(config)
    opts.path("playbook", required=True)
    opts.path("prepare")
    opts.path("side_effect")
    opts.path("verify")
    opts.path("config")
    opts.paths("roles_path", directory=True)
    _groups(opts)
    for key in ("host_vars", "group_vars"):
        for name, value in opts.mapping(key).items():
            if not isinstance(value, dict):
                raise opts.error(f"{key}.{name}", f"`{key}.{name}` must be a mapping of variables")
    opts.names("extra_vars")
    opts.boolean("become")
    opts.user()
    opts.env()
    opts.strings("args")
    opts.strings("idempotence_skip_tags")
    inventory_links(opts)


def inventory_links(opts: Options) -> dict[str, Path]:
    """``inventory_links``: ``group_vars``/``host_vars`` → the folder linked under that name
    next to the inventory (as Molecule links its ``inventory.links``), checked by the rule of
    the project's files: inside the project (unless ``allow_outside_project``), and every file
    in it."""
    links = opts.mapping("inventory_links")
    found: dict[str, Path] = {}
    for kind, target in links.items():
        if kind not in LINKABLE:
            raise opts.error(
                f"inventory_links.{kind}",
                f"`inventory_links` links {' and '.join(LINKABLE)}, not {kind!r}",
                "write `inventory_links: {group_vars: inventory/group_vars}`",
            )
        if not isinstance(target, str) or not target:
            raise opts.error(
                f"inventory_links.{kind}",
                f"`inventory_links.{kind}` must be the path of a folder",
                f"write `{kind}: inventory/{kind}` (relative to the configuration file)",
            )
        found[kind] = opts.resolve(f"inventory_links.{kind}", target, directory=True, into_node=True)
    return found


def link_inventory_vars(folder: Path, links: dict[str, Path]) -> None:
    """Link each of ``links`` into ``folder`` (the inventory's own) under its name, as Molecule
    does in its ephemeral inventory folder; a link there from an earlier run is replaced."""
    for kind, target in links.items():
        link = folder / kind
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target.resolve(), target_is_directory=True)


def _groups(opts: Options) -> dict[str, list[str]]:
    """``group -> platform names or families`` (``["all"]`` for "every node"); group names are
    words (``web_servers``, and ``web-servers`` as Molecule scenarios have them, which Ansible
    takes with a warning), not text with spaces, commas or colons that break host patterns."""
    groups = _group_members(opts)
    bad = next((g for g in groups if not GROUP_NAME.fullmatch(g)), None)
    if bad is not None:
        raise opts.error(
            "groups", f"{clipped(bad)} is no Ansible group name", "use letters, digits, `_`, `-` and `.`"
        )
    return groups


def _group_members(opts: Options) -> dict[str, list[str]]:
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


def host_of(node: Node) -> InventoryHost:
    """``node`` as an inventory host: named nodes (``nodes: {web: …}``) by their short name,
    which is their hostname too; else the platform's name. Pure."""
    return InventoryHost(
        name=getattr(node, "short_name", "") or node.platform.name,
        container=node.container_id,
        platform=node.platform,
        groups=tuple(getattr(node, "groups", ())),
    )


def inventory(
    config: ProvisionerConfig, node: Node, *, docker_host: str | None, prepare: bool = False
) -> dict[str, Any]:
    """The generated inventory for one node (YAML inventory structure). Pure."""
    return group_inventory(config, [host_of(node)], docker_host=docker_host, prepare=prepare)


def group_inventory(
    config: ProvisionerConfig,
    hosts: Sequence[InventoryHost],
    *,
    docker_host: str | None,
    prepare: bool = False,
) -> dict[str, Any]:
    """The generated inventory of ``hosts`` (YAML inventory structure), in their order. Pure.

    Each host's groups are those of ``groups`` naming it (by inventory name, platform name,
    family or alias, or ``all``) and its node's own ``groups:``. For the prepare playbook,
    ``user`` and ``become`` are left out: it runs as the image's user (root) and makes the node
    ready for them (users, sudo rules).
    """
    opts = _options(config)
    user = opts.user()
    host_vars = opts.mapping("host_vars")
    group_vars = opts.mapping("group_vars")
    all_hosts: dict[str, Any] = {}
    children: dict[str, Any] = {}
    for group in _groups(opts):
        children[group] = {"hosts": {}}
    for host in hosts:
        variables: dict[str, Any] = {
            "ansible_connection": "infranode",
            "ansible_host": host.container,
            "ansible_python_interpreter": "auto_silent",
        }
        if docker_host:
            variables["ansible_infranode_docker_host"] = docker_host
        if user and not prepare:
            variables["ansible_user"] = user
        if "become" in config.options and not prepare:
            variables["ansible_become"] = opts.boolean("become")
        variables.update(host_vars.get(host.name, {}))
        all_hosts[host.name] = variables
        p = host.platform
        names = {host.name, p.name, p.family, *p.aliases, "all"}
        for group, members in _groups(opts).items():
            if names & set(members):
                children[group]["hosts"][host.name] = None
        for group in host.groups:
            if group != "all":
                children.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    for group, variables in group_vars.items():
        if group != "all":
            children.setdefault(group, {"hosts": {}})["vars"] = variables
    return {"all": {"hosts": all_hosts, "vars": group_vars.get("all", {}), "children": children}}


def limit_args(limit: Sequence[str]) -> list[str]:
    """``--limit`` for a run over some hosts of the inventory only. Pure."""
    return ["--limit", ",".join(limit)] if limit else []


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


def read_changes(path: Path, *, hosts: bool = False) -> ChangeList:
    """Changed tasks recorded by the callback, as ``task (action)`` plus the diff (``host:``
    first with ``hosts``, for a run over several), read a line at a time and bounded. Pure."""
    changes = ChangeList()
    if not path.is_file():
        return changes
    with open(path, encoding="utf-8") as recorded:
        for line in recorded:
            if not line.strip():
                continue
            entry = json.loads(line)
            if "failed" in entry:
                continue
            where = f" [{entry.get('host', '?')}]" if hosts else ""
            text = f"changed{where}: {entry['task']} ({entry['action']})"
            if entry.get("diff"):
                text += "\n" + str(entry["diff"]).rstrip("\n")
            changes.add(text)
    return changes


def missing_user(nodes: Sequence[Node], config: ProvisionerConfig) -> str:
    """Why a failed run could not work as ``user:``, when a node has no such user, or "".

    Ansible reports it as "Failed to create temporary directory" (Docker's `unable to find user`
    at the end of the command line it shows): the reason names the user, the node and the fix.
    """
    opts = _options(config)
    user = opts.user()
    for node in nodes if user else ():
        name = unknown_user(node, str(user))
        if name:
            return (
                f"user {name!r} does not exist in node {node.name} (it has no passwd entry), so Ansible "
                f"cannot run as it (`user:` at {opts.where('user')}); create it in the `prepare:` "
                "playbook, which runs as root (`ansible.builtin.user: {name: ...}`), or in the "
                "platform's image, or remove `user:`"
            )
    return ""


def read_failure(path: Path) -> str:
    """Why the run failed, in Ansible's words: the first failed task recorded by the callback
    (``task 'Write the page' failed on debian-13: 'served_by' is undefined``), or "". Pure."""
    if not path.is_file():
        return ""
    with open(path, encoding="utf-8") as recorded:
        for line in recorded:
            entry = json.loads(line) if line.strip() else {}
            if "failed" in entry:
                message = " ".join(str(entry["failed"]).split())
                if len(message) > 400:
                    message = message[:399] + "…"
                return f"task {entry.get('task', '?')!r} failed on {entry.get('host', '?')}: {message}"
    return ""


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
        with tempfile.TemporaryDirectory(prefix="infranode-ansible-") as tmp:
            return self._run([node], config, output, inventory_path=Path(tmp) / "inventory.yml")

    def write_inventory(self, path: Path, hosts: Sequence[InventoryHost], config: ProvisionerConfig) -> None:
        """The session's inventory of ``hosts`` (JSON, which the yaml inventory plugin reads),
        with the ``inventory_links`` folders next to it."""
        path.write_text(json.dumps(group_inventory(config, hosts, docker_host=None), indent=2) + "\n")
        link_inventory_vars(path.parent, inventory_links(_options(config)))

    def inventory_env(self, config: ProvisionerConfig) -> dict[str, str]:
        """Our connection plugin, for ``ansible`` run by the specs (``host.ansible(...)``)."""
        existing = os.environ.get("ANSIBLE_CONNECTION_PLUGINS")
        paths = [str(PLUGINS / "connection"), *filter(None, [existing])]
        if existing and str(PLUGINS / "connection") in existing.split(os.pathsep):
            paths = [existing]
        return {"ANSIBLE_CONNECTION_PLUGINS": os.pathsep.join(paths)}

    def converge_together(
        self,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory: Path,
        limit: Sequence[str] = (),
    ) -> ConvergeResult:
        """One ansible-playbook run over an inventory of every node (``--limit`` to some)."""
        return self._run(nodes, config, output, inventory_path=inventory, limit=limit)

    def action_of(self, action: str, config: ProvisionerConfig) -> str | None:
        """The ``side_effect`` or ``verify`` playbook, as the configuration names it."""
        value = config.options.get(action) if action in ACTIONS else None
        return str(value) if value else None

    def run_action(
        self,
        action: str,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory: Path | None,
    ) -> ConvergeResult:
        """The ``side_effect`` or ``verify`` playbook over ``nodes``' inventory, with the user's
        ``args``, as Molecule runs its ``side_effect.yml`` and ``verify.yml``: no prepare, no
        diff, no idempotence tags."""
        if action not in ACTIONS:
            raise ValueError(f"the ansible provisioner runs no action {action!r}")
        playbook = _options(config).path(action, required=True)
        assert playbook is not None
        if inventory is not None:
            return self._run(nodes, config, output, inventory_path=inventory, playbook=playbook)
        with tempfile.TemporaryDirectory(prefix="infranode-ansible-") as tmp:
            path = Path(tmp) / "inventory.yml"
            return self._run(nodes, config, output, inventory_path=path, playbook=playbook)

    def _run(
        self,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory_path: Path,
        limit: Sequence[str] = (),
        playbook: Path | None = None,
    ) -> ConvergeResult:
        """:meth:`_run_playbooks` with a channel relay into ``nodes`` for the connection plugin."""
        with ChannelRelay(nodes[0].engine, {n.container_id: n.where for n in nodes}) as relay:
            return self._run_playbooks(
                nodes,
                config,
                output,
                inventory_path=inventory_path,
                limit=limit,
                playbook=playbook,
                relay={RELAY_ENV: relay.address},
            )

    def _run_playbooks(
        self,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory_path: Path,
        limit: Sequence[str],
        playbook: Path | None,
        relay: dict[str, str],
    ) -> ConvergeResult:
        """The prepare playbook (first round only) and the playbook, over ``nodes``' inventory,
        written to ``inventory_path``; the work files (vars, changes) go next to it. Given
        ``playbook`` (an action's: side effect, verify), that one alone is run, as in a first round."""
        validate(config)
        opts = _options(config)
        tool = require_tool(NAME, TOOL, INSTALL)
        first = nodes[0]
        again = playbook is None and max(n.converge_round for n in nodes) > 1
        together = len(nodes) > 1 or bool(limit)
        work = inventory_path.parent / (inventory_path.stem + ".work")
        work.mkdir(parents=True, exist_ok=True)
        (work / "tmp").mkdir(exist_ok=True)
        (work / "changes.jsonl").unlink(missing_ok=True)
        docker_host = docker_host_for_tools(first)
        hosts = [host_of(n) for n in nodes]
        prepare_inventory_path = inventory_path.with_name(inventory_path.stem + ".prepare.yml")
        # JSON is YAML: the yaml inventory plugin reads it.
        inventory_path.write_text(
            json.dumps(group_inventory(config, hosts, docker_host=docker_host), indent=2)
        )
        prepare_inventory_path.write_text(
            json.dumps(group_inventory(config, hosts, docker_host=docker_host, prepare=True), indent=2)
        )
        link_inventory_vars(inventory_path.parent, inventory_links(opts))
        extra = opts.mapping("extra_vars")
        extra_path = None
        if extra:
            extra_path = work / "extra_vars.json"
            extra_path.write_text(json.dumps(extra))
        env = playbook_env(config, work, {**os.environ, **relay})
        collected = OutputTail(output)
        prepare = opts.path("prepare")
        if prepare is not None and not again and playbook is None:
            argv = playbook_argv(
                tool,
                prepare,
                prepare_inventory_path,
                extra_vars_path=extra_path,
                diff=False,
                args=limit_args(limit),
            )
            collected(f"$ {' '.join(argv)}\n".encode())
            status = run_streaming(argv, collected, env=env, cwd=config.base_dir)
            if status != 0:
                return collected.result(status, reason=read_failure(work / "changes.jsonl"))
            (work / "changes.jsonl").unlink(missing_ok=True)
        playbook = playbook or opts.path("playbook", required=True)
        assert playbook is not None
        argv = playbook_argv(
            tool,
            playbook,
            inventory_path,
            extra_vars_path=extra_path,
            diff=again,
            args=[*converge_args(config, again=again), *limit_args(limit)],
        )
        collected(f"$ {' '.join(argv)}\n".encode())
        status = run_streaming(argv, collected, env=env, cwd=config.base_dir)
        changes = read_changes(work / "changes.jsonl", hosts=together)
        reason = (missing_user(nodes, config) or read_failure(work / "changes.jsonl")) if status else ""
        if status and reason.startswith("user "):
            collected(f"infranode: {reason}\n".encode())
        return collected.result(status, changed=bool(changes), changes=changes, reason=reason)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [AnsibleProvisioner()]
