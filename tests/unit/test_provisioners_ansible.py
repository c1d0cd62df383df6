"""The ansible provisioner's pure parts: inventory, command line, environment, changes, checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.errors import SettingsError
from pytest_infranode.node import Node
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.projectfiles import FileRule
from pytest_infranode.provisioners import ansible
from pytest_infranode.provisioners.ansible import AnsibleProvisioner
from pytest_infranode.provisioners.base import InventoryHost
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.settings import ProvisionerConfig

DEBIAN_12 = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")


def config(tmp_path: Path, **options: object) -> ProvisionerConfig:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    options.setdefault("playbook", "site.yml")
    return ProvisionerConfig(name="ansible", options=options, base_dir=tmp_path)


def node() -> Node:
    n = Node(cast(EngineProtocol, object()), DEBIAN_12, session_id="0123456789abcdef", image="img")
    n.container_id = "c0ffee"
    return n


def test_satisfies_the_protocol() -> None:
    assert isinstance(AnsibleProvisioner(), Provisioner)
    assert [p.name for p in ansible.pytest_infranode_add_provisioners()] == ["ansible"]


def test_inventory_names_the_host_after_the_platform_and_uses_our_connection(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        groups=["web", "db"],
        group_vars={"all": {"site": "demo"}, "web": {"port": 80}, "other": {"x": 1}},
        host_vars={"debian-12": {"served_by": "d12"}, "rocky-9": {"served_by": "r9"}},
        user="deploy",
        become=True,
    )
    inv = ansible.inventory(cfg, node(), docker_host="tcp://daemon:2376")
    host = inv["all"]["hosts"]["debian-12"]
    assert host["ansible_connection"] == "infranode"
    assert host["ansible_host"] == "c0ffee"
    assert host["ansible_infranode_docker_host"] == "tcp://daemon:2376"
    assert host["ansible_user"] == "deploy"
    assert host["ansible_become"] is True
    assert host["served_by"] == "d12"
    assert inv["all"]["vars"] == {"site": "demo"}
    children = inv["all"]["children"]
    assert children["web"] == {"hosts": {"debian-12": None}, "vars": {"port": 80}}
    assert children["db"] == {"hosts": {"debian-12": None}}
    assert children["other"] == {"hosts": {}, "vars": {"x": 1}}


def test_prepare_inventory_runs_as_the_image_user(tmp_path: Path) -> None:
    cfg = config(tmp_path, user="deploy", become=True)
    host = ansible.inventory(cfg, node(), docker_host=None, prepare=True)["all"]["hosts"]["debian-12"]
    assert "ansible_user" not in host
    assert "ansible_become" not in host
    assert "ansible_infranode_docker_host" not in host


def test_group_membership_by_platform_name_or_family(tmp_path: Path) -> None:
    cfg = config(tmp_path, groups={"web": ["debian"], "rhel_only": ["rocky-9"], "every": "all"})
    children = ansible.inventory(cfg, node(), docker_host=None)["all"]["children"]
    assert children["web"]["hosts"] == {"debian-12": None}
    assert children["rhel_only"]["hosts"] == {}
    assert children["every"]["hosts"] == {"debian-12": None}


def test_playbook_argv_is_a_list_without_a_shell(tmp_path: Path) -> None:
    argv = ansible.playbook_argv(
        "/venv/bin/ansible-playbook",
        tmp_path / "site; rm -rf /.yml",
        tmp_path / "inv.yml",
        extra_vars_path=tmp_path / "extra.json",
        diff=True,
        args=["--tags", "web"],
    )
    assert argv == [
        "/venv/bin/ansible-playbook",
        "-i",
        str(tmp_path / "inv.yml"),
        "-e",
        f"@{tmp_path / 'extra.json'}",
        "--diff",
        "--tags",
        "web",
        str(tmp_path / "site; rm -rf /.yml"),
    ]
    plain = ansible.playbook_argv(
        "ap", tmp_path / "s.yml", tmp_path / "i", extra_vars_path=None, diff=False, args=[]
    )
    assert plain == ["ap", "-i", str(tmp_path / "i"), str(tmp_path / "s.yml")]


def test_idempotence_skip_tags_are_skipped_in_the_second_converge_only(tmp_path: Path) -> None:
    skip = ["molecule-idempotence-notest", "slow"]
    cfg = config(tmp_path, args=["--skip-tags", "notest"], idempotence_skip_tags=skip)
    ansible.validate(cfg)
    assert ansible.converge_args(cfg, again=False) == ["--skip-tags", "notest"]
    assert ansible.converge_args(cfg, again=True) == [
        "--skip-tags",
        "notest",
        "--skip-tags",
        "molecule-idempotence-notest,slow",
    ]
    assert ansible.converge_args(config(tmp_path), again=True) == []


def test_idempotence_skip_tags_must_be_tag_names(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="`idempotence_skip_tags` must be a string or a list"):
        ansible.validate(config(tmp_path, idempotence_skip_tags={"a": 1}))


def test_env_adds_our_plugins_and_keeps_the_users(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    cfg = config(tmp_path, roles_path="roles", config="ansible.cfg", env={"ANSIBLE_FORKS": 1})
    base = {
        "ANSIBLE_CALLBACKS_ENABLED": "profile_tasks",
        "ANSIBLE_CONNECTION_PLUGINS": "/mine",
        "PATH": "/bin",
    }
    env = ansible.playbook_env(cfg, tmp_path, base)
    assert env["ANSIBLE_CONNECTION_PLUGINS"].split(os.pathsep) == [
        str(ansible.PLUGINS / "connection"),
        "/mine",
    ]
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "profile_tasks,infranode_changes"
    assert env["ANSIBLE_ROLES_PATH"] == str(tmp_path / "roles")
    assert env["ANSIBLE_CONFIG"] == str(tmp_path / "ansible.cfg")
    assert env["ANSIBLE_FORKS"] == "1"
    assert env["PATH"] == "/bin"
    assert env[ansible.CHANGES_ENV] == str(tmp_path / "changes.jsonl")


def test_shipped_plugins_exist() -> None:
    assert (ansible.PLUGINS / "connection" / "infranode.py").is_file()
    assert (ansible.PLUGINS / "callback" / "infranode_changes.py").is_file()


def test_read_changes_shows_task_action_and_diff(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    assert list(ansible.read_changes(path)) == []
    entries = [
        {
            "host": "debian-12",
            "task": "Home page",
            "action": "template",
            "diff": "--- before\n+++ after\n-a\n+b\n",
        },
        {"host": "debian-12", "task": "Restart", "action": "systemd_service", "diff": ""},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + "\n")
    assert list(ansible.read_changes(path)) == [
        "changed: Home page (template)\n--- before\n+++ after\n-a\n+b",
        "changed: Restart (systemd_service)",
    ]
    assert ansible.read_failure(path) == ""


def test_read_failure_gives_the_first_failed_task_in_ansibles_words(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    assert ansible.read_failure(path) == ""
    entries = [
        {"host": "debian-13", "task": "Home page", "action": "template", "diff": ""},
        {"host": "debian-13", "task": "Site config", "failed": "Task failed: 'served_by'\n is undefined"},
        {"host": "debian-12", "task": "Later", "failed": "other"},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert ansible.read_failure(path) == (
        "task 'Site config' failed on debian-13: Task failed: 'served_by' is undefined"
    )
    assert list(ansible.read_changes(path)) == ["changed: Home page (template)"]


@pytest.mark.parametrize(
    ("options", "message", "key"),
    [
        ({"playbook": None}, "`playbook` is required", "playbook"),
        ({"playbook": "missing.yml"}, "file 'missing.yml' does not exist", "playbook"),
        ({"prepare": "nope.yml"}, "file 'nope.yml' does not exist", "prepare"),
        ({"roles_path": ["nope"]}, "directory 'nope' does not exist", "roles_path"),
        ({"playbok": "x"}, "unknown option 'playbok'", "playbok"),
        ({"become": "yes"}, "`become` must be true or false", "become"),
        ({"groups": 3}, "`groups` must be a list", "groups"),
        ({"host_vars": {"debian-12": [1]}}, "`host_vars.debian-12` must be a mapping", "host_vars.debian-12"),
        ({"extra_vars": ["a"]}, "`extra_vars` must be a mapping", "extra_vars"),
    ],
)
def test_validate_names_the_setting(
    tmp_path: Path, options: dict[str, object], message: str, key: str
) -> None:
    cfg = config(tmp_path, **options)
    if options.get("playbook", "") is None:
        cfg = ProvisionerConfig(name="ansible", options={}, base_dir=tmp_path)
    with pytest.raises(SettingsError) as info:
        ansible.validate(cfg)
    assert message in str(info.value)
    assert f"(provisioner.{key})" in info.value.where


def test_unknown_option_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        ansible.validate(config(tmp_path, extra_var={"a": 1}))
    assert "did you mean 'extra_vars'?" in info.value.fix


def test_missing_ansible_playbook_is_named_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ansible, "require_tool", _real_require_tool_without_tools(monkeypatch))
    with pytest.raises(SettingsError) as info:
        AnsibleProvisioner().check(config(tmp_path))
    text = str(info.value)
    assert "needs `ansible-playbook` on the runner" in text
    assert "where: runner:" in text
    assert "pip install 'pytest-infranode[ansible]'" in text


def _real_require_tool_without_tools(monkeypatch: pytest.MonkeyPatch) -> object:
    from pytest_infranode.provisioners import _common

    monkeypatch.setattr(_common, "find_tool", lambda tool: None)
    return _common.require_tool


def _linked_vars(tmp_path: Path) -> Path:
    group_vars = tmp_path / "inventory" / "group_vars"
    group_vars.mkdir(parents=True)
    (group_vars / "all.yml").write_text("site_name: from-the-link\n")
    return group_vars


def test_inventory_links_are_linked_next_to_the_session_inventory_and_ansible_reads_them(
    tmp_path: Path,
) -> None:
    """Molecule's inventory.links: the linked folder beside the inventory file, where Ansible's
    own tools read it (here ansible-inventory, as testinfra's AnsibleRunner runs it)."""
    _linked_vars(tmp_path)
    cfg = config(tmp_path, inventory_links={"group_vars": "inventory/group_vars"})
    inventory = tmp_path / "logs" / "s-debian-12.inventory" / "s-debian-12.inventory.yml"
    inventory.parent.mkdir(parents=True)
    hosts = [InventoryHost(name="web", container="infranode-s-debian-12-web", platform=DEBIAN_12)]
    provisioner = AnsibleProvisioner()
    provisioner.write_inventory(inventory, hosts, cfg)
    provisioner.write_inventory(inventory, hosts, cfg)  # written again by each run: the link replaced
    link = inventory.parent / "group_vars"
    assert link.is_symlink()
    assert link.resolve() == (tmp_path / "inventory" / "group_vars").resolve()
    tool = Path(sys.executable).parent / "ansible-inventory"
    listed = subprocess.run(
        [str(tool), "-i", str(inventory), "--host", "web"], capture_output=True, text=True, check=True
    )
    assert json.loads(listed.stdout)["site_name"] == "from-the-link"


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({"hosts": "inventory/group_vars"}, "`inventory_links` links group_vars and host_vars, not 'hosts'"),
        ({"group_vars": ""}, "`inventory_links.group_vars` must be the path of a folder"),
        ({"group_vars": "nowhere"}, "directory 'nowhere' does not exist"),
        ({"group_vars": "../outside"}, "directory '../outside' is outside the project"),
    ],
    ids=["not-a-vars-folder", "empty", "missing", "outside-the-project"],
)
def test_bad_inventory_links_are_refused_naming_the_option(
    tmp_path: Path, links: dict[str, str], message: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _linked_vars(project)
    (tmp_path / "outside").mkdir()
    with pytest.raises(SettingsError) as err:
        ansible.validate(config(project, inventory_links=links))
    assert message in str(err.value)
    assert "inventory_links" in str(err.value)


def test_inventory_links_outside_the_project_need_allow_outside_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    _linked_vars(tmp_path)
    options = {"playbook": "site.yml", "inventory_links": {"group_vars": "../inventory/group_vars"}}
    allowed = ProvisionerConfig(
        name="ansible", options=options, base_dir=project, files=FileRule(project, allow_outside=True)
    )
    ansible.validate(allowed)
    with pytest.raises(SettingsError, match="outside the project"):
        ansible.validate(ProvisionerConfig(name="ansible", options=options, base_dir=project))


class AskedNode:
    """A node that answers `id -u NAME` with ``status`` (1: no such user), and records the asks."""

    def __init__(self, status: int) -> None:
        self.name = "infranode-0123456789abcdef-debian-12"
        self.status = status
        self.asked: list[list[str]] = []

    def run_argv(self, argv: list[str], **_: object) -> object:
        from pytest_infranode.engine.api import ExecResult

        self.asked.append(list(argv))
        return ExecResult(self.status, b"", b"")


@pytest.mark.parametrize(
    ("user", "status", "named"),
    [
        ("nosuchuser", 1, True),
        ("deploy", 0, False),
        ("nosuchuser", 127, False),
        ("1000", 1, False),
        (None, 1, False),
    ],
)
def test_a_user_the_node_lacks_is_the_reason_of_a_failed_run(
    tmp_path: Path, user: str | None, status: int, named: bool
) -> None:
    options = {"user": user} if user else {}
    node_ = AskedNode(status)
    reason = ansible.missing_user([cast(Node, node_)], config(tmp_path, **options))
    if named:
        assert reason.startswith(f"user 'nosuchuser' does not exist in node {node_.name}")
        assert "(`user:` at default (provisioner.user))" in reason
        assert "`prepare:` playbook, which runs as root" in reason
        assert node_.asked == [["id", "-u", "--", "nosuchuser"]]
    else:
        assert reason == ""
    if user is None or user.isdigit():
        assert node_.asked == []  # nothing to ask: no user, or a uid (no passwd entry needed)
