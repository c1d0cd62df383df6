"""One run over the inventory of a platform's nodes (ConvergesTogether): which nodes, in which
order, the inventory it writes, and the session on the fake engine. No daemon."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pytest_infranode import convergecache
from pytest_infranode import hookspecs
from pytest_infranode import reaper
from pytest_infranode.engine.core import Engine
from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import SettingsError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.molecule.environment import tools_path
from pytest_infranode.node import Node
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.progress import ProgressPlugin
from pytest_infranode.provisioners import ansible
from pytest_infranode.provisioners import shell
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import ConvergesTogether
from pytest_infranode.provisioners.base import InventoryHost
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.session import InfraSession
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import Target
from tests.unit.fakes import FakeEngine

DEBIAN_12 = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")


def _layout(tmp_path: Path, yaml: str) -> NodeLayout:
    (tmp_path / "infranode.yaml").write_text(yaml)
    return NodeLayout(build_settings(RawOptions(cli_platforms=["debian-12"]), tmp_path))


CLUSTER = (
    "provisioner: {name: shell, inline: ['true']}\n"
    "nodes:\n  server-1: {groups: [servers]}\n  client-1: {groups: [clients]}\n"
    "  client-2: {groups: [clients]}\n"
)


def test_nodes_sharing_the_provisioner_settings_are_converged_together(tmp_path: Path) -> None:
    layout = _layout(tmp_path, CLUSTER)
    assert layout.converged_together("client-2") == ["server-1", "client-1", "client-2"]
    assert layout.levels(["server-1", "client-1", "client-2"]) == [["server-1", "client-1", "client-2"]]


def test_a_node_with_its_own_provisioner_is_converged_alone(tmp_path: Path) -> None:
    yaml = CLUSTER.replace("client-2: {groups: [clients]}", "client-2: {provisioner: {name: shell}}")
    layout = _layout(tmp_path, yaml)
    assert layout.converged_together("client-2") == []
    assert layout.converged_together("server-1") == ["server-1", "client-1"]


def test_depends_on_makes_levels_run_one_after_the_other(tmp_path: Path) -> None:
    yaml = (
        "provisioner: {name: shell}\n"
        "nodes:\n  web: {depends_on: [db]}\n  db: {}\n  cache: {}\n  proxy: {depends_on: [web]}\n"
    )
    layout = _layout(tmp_path, yaml)
    members = layout.converged_together("web")
    assert members == ["db", "web", "cache", "proxy"]
    assert layout.levels(members) == [["db", "cache"], ["web"], ["proxy"]]


def test_a_lone_node_between_members_makes_every_node_converge_alone(tmp_path: Path) -> None:
    # db → mid (own provisioner) → web: one run over db and web would need mid in its middle
    yaml = (
        "provisioner: {name: shell}\n"
        "nodes:\n  db: {}\n  mid: {depends_on: [db], provisioner: {name: shell, inline: [x]}}\n"
        "  web: {depends_on: [mid]}\n"
    )
    assert _layout(tmp_path, yaml).converged_together("web") == []


def test_without_nodes_there_is_nothing_to_converge_together(tmp_path: Path) -> None:
    assert _layout(tmp_path, "provisioner: {name: shell}\n").converged_together("") == []


# the ansible provisioner's whole-group inventory
def _ansible_config(tmp_path: Path, **options: Any) -> ProvisionerConfig:
    (tmp_path / "site.yml").write_text("- hosts: all\n")
    return ProvisionerConfig(name="ansible", options={"playbook": "site.yml", **options}, base_dir=tmp_path)


def test_ansible_offers_the_whole_group_converge() -> None:
    assert isinstance(ansible.AnsibleProvisioner(), ConvergesTogether)
    assert not isinstance(shell.ShellProvisioner(), ConvergesTogether)


def test_group_inventory_holds_every_host_with_its_groups_and_vars(tmp_path: Path) -> None:
    cfg = _ansible_config(
        tmp_path,
        groups={"servers": ["server-1"], "clients": ["client-1", "client-2"]},
        group_vars={"all": {"site": "demo"}, "clients": {"cluster_role": "client"}},
        host_vars={"server-1": {"cluster_port": 7001}},
    )
    hosts = [
        InventoryHost("server-1", "c-server", DEBIAN_12, ("servers",)),
        InventoryHost("client-1", "c-client1", DEBIAN_12, ("clients", "edge")),
        InventoryHost("client-2", "c-client2", DEBIAN_12),
    ]
    inv = ansible.group_inventory(cfg, hosts, docker_host=None)["all"]
    assert list(inv["hosts"]) == ["server-1", "client-1", "client-2"]
    assert inv["hosts"]["server-1"]["ansible_host"] == "c-server"
    assert inv["hosts"]["server-1"]["cluster_port"] == 7001
    assert "cluster_port" not in inv["hosts"]["client-1"]
    assert inv["vars"] == {"site": "demo"}
    assert inv["children"]["servers"] == {"hosts": {"server-1": None}}
    assert inv["children"]["clients"] == {
        "hosts": {"client-1": None, "client-2": None},
        "vars": {"cluster_role": "client"},
    }
    assert inv["children"]["edge"] == {"hosts": {"client-1": None}}  # the node's own groups:


def test_limit_args_narrow_a_run_to_some_hosts() -> None:
    assert ansible.limit_args(["db", "cache"]) == ["--limit", "db,cache"]
    assert ansible.limit_args([]) == []


def test_changes_of_a_run_over_several_hosts_name_the_host(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    path.write_text(
        json.dumps({"host": "client-1", "task": "Write", "action": "template", "diff": ""}) + "\n"
    )
    assert list(ansible.read_changes(path, hosts=True)) == ["changed [client-1]: Write (template)"]
    assert list(ansible.read_changes(path)) == ["changed: Write (template)"]


# the session, with a provisioner that records its runs
class Together:
    """A provisioner that converges nodes together, recording each run."""

    name = "together"

    def __init__(self, fail: bool = False) -> None:
        self.runs: list[tuple[list[str], list[str], int]] = []
        self.fail = fail

    def check(self, config: ProvisionerConfig) -> None:
        pass

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        self.runs.append(([node.short_name], [], node.converge_round))
        return ConvergeResult(0, "alone", changed=False)

    def write_inventory(self, path: Path, hosts: Sequence[InventoryHost], config: ProvisionerConfig) -> None:
        path.write_text(json.dumps({h.name: h.container for h in hosts}))

    def inventory_env(self, config: ProvisionerConfig) -> dict[str, str]:
        return {"TOGETHER_PLUGINS": "/plugins"}

    def converge_together(
        self,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory: Path,
        limit: Sequence[str] = (),
    ) -> ConvergeResult:
        inventory.write_text(json.dumps({n.short_name: n.container_id for n in nodes}))
        self.runs.append(([n.short_name for n in nodes], list(limit), nodes[0].converge_round))
        output(b"one run\n")
        return ConvergeResult(2 if self.fail else 0, "boom" if self.fail else "ok", changed=False)


class Plugin:
    def __init__(self, provisioner: Together) -> None:
        self.provisioner = provisioner

    @hookimpl
    def pytest_infranode_add_provisioners(self) -> list[Provisioner]:
        return [self.provisioner]


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(Engine, "connect", classmethod(lambda cls, docker_host=None, **kw: fake))
    monkeypatch.setattr(reaper, "Watchdog", lambda *a, **k: type("W", (), {"release": lambda self: None})())
    return fake


def _session(
    tmp_path: Path,
    yaml: str,
    provisioner: Together,
    extra: object = None,
    say: Any = None,
    **opts: Any,
) -> InfraSession:
    (tmp_path / "infranode.yaml").write_text(yaml)
    settings = build_settings(RawOptions(cli_platforms=["debian-12"], **opts), tmp_path)
    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(shell)
    manager.register(Plugin(provisioner))
    if extra is not None:
        manager.register(extra)
    session = InfraSession(settings, manager.hook, log_dir=tmp_path / "logs", say=say or (lambda _m: None))
    manager.register(session)
    session.check_provisioner()
    return session


NODES = (
    "provisioner: {name: together}\nnodes:\n  server-1: {groups: [servers]}\n  client-1: {}\n  client-2: {}\n"
)


@pytest.mark.parametrize("parallel", [1, 3])
def test_one_run_converges_every_node_once_all_have_booted(
    tmp_path: Path, engine: FakeEngine, parallel: int
) -> None:
    together = Together()
    progress = ProgressPlugin(lambda _line: None, tmp_path / "logs", tty=False)  # a wrapper
    session = _session(tmp_path, NODES, together, extra=progress, cli_parallel=parallel)
    d12 = session.platforms[0]
    written = session.write_inventories()
    assert written == [session.inventory_path(d12)]
    before = json.loads(written[0].read_text())
    assert before["client-2"] == session.node_name(Target(d12, "client-2"))  # the container's name
    session.plan([Target(d12, "client-1")])  # a test of one node: the whole run is made
    node = session.node_for(d12, "client-1")
    assert node.state == "converged"
    assert together.runs == [(["server-1", "client-1", "client-2"], [], 1)]
    nodes = session.nodes_of(d12)
    assert all(n.state == "converged" for n in nodes.values())
    assert json.loads(written[0].read_text()) == {k: n.container_id for k, n in nodes.items()}
    assert [op for op, _ in engine.calls if op == "create"] == ["create"] * 3
    assert all(n.converge_log == nodes["server-1"].converge_log for n in nodes.values())
    assert "one run" in Path(node.converge_log).read_text()
    session.teardown()
    assert engine.names() == []


def test_depends_on_levels_are_runs_limited_to_them(tmp_path: Path, engine: FakeEngine) -> None:
    together = Together()
    yaml = "provisioner: {name: together}\nnodes:\n  web: {depends_on: [db]}\n  db: {}\n"
    session = _session(tmp_path, yaml, together, cli_parallel=2, cli_idempotence=True)
    d12 = session.platforms[0]
    session.node_for(d12, "web")
    # both booted, then db's level, then web's, then the idempotence run over both
    assert together.runs == [(["db", "web"], ["db"], 1), (["db", "web"], ["web"], 1), (["db", "web"], [], 2)]
    assert session.converger.idempotence == {n.name: "ok" for n in session.nodes_of(d12).values()}
    session.teardown()


def test_a_failed_run_fails_every_node_with_one_error(tmp_path: Path, engine: FakeEngine) -> None:
    session = _session(tmp_path, NODES, Together(fail=True), cli_parallel=2)
    d12 = session.platforms[0]
    with pytest.raises(
        ConvergeError, match=r"converge of nodes server-1, client-1, client-2 .* status 2"
    ) as one:
        session.node_for(d12, "server-1")
    with pytest.raises(ConvergeError) as other:
        session.node_for(d12, "client-2")
    assert other.value is one.value
    assert engine.names() == []  # --infra-keep=never: the failed nodes went at once
    session.teardown()


def test_a_conftest_converge_hook_keeps_the_node_by_node_path(tmp_path: Path, engine: FakeEngine) -> None:
    class OwnConverge:
        @hookimpl
        def pytest_infranode_converge(self, node: Node, **kwargs: Any) -> ConvergeResult:
            return ConvergeResult(0, "mine", changed=False)

    together = Together()
    session = _session(tmp_path, NODES, together, extra=OwnConverge(), cli_parallel=1)
    d12 = session.platforms[0]
    assert session.converged_together(Target(d12, "server-1")) == ()
    assert session.node_for(d12, "client-1").state == "converged"
    assert together.runs == []  # the conftest's hook converged it
    session.teardown()


def test_a_provisioner_without_it_converges_node_by_node(tmp_path: Path, engine: FakeEngine) -> None:
    yaml = "provisioner: {name: shell, inline: ['true']}\nnodes:\n  a: {}\n  b: {}\n"
    session = _session(tmp_path, yaml, Together(), cli_parallel=1)
    d12 = session.platforms[0]
    assert session.converged_together(Target(d12, "a")) == ()
    assert session.write_inventories() == []
    session.node_for(d12, "a")
    assert [s for op, s in engine.calls if op == "create"] == [session.node_name(Target(d12, "a"))]
    session.teardown()


# the specs' own host selection (testinfra_hosts)
def test_testinfra_hosts_choose_nodes_by_name_group_and_backend(tmp_path: Path) -> None:
    layout = _layout(tmp_path, CLUSTER)
    assert layout.select_hosts(["ansible://clients"]) == ["client-1", "client-2"]
    assert layout.select_hosts(["server-1"]) == ["server-1"]  # what get_hosts("servers") returns
    assert layout.select_hosts(["docker://client-2", "ssh://root@server-1?timeout=3"]) == [
        "server-1",
        "client-2",
    ]
    assert layout.select_hosts(["ansible://all"]) == ["server-1", "client-1", "client-2"]
    assert layout.select_hosts(["ansible://servers,client-2"]) == ["server-1", "client-2"]
    assert layout.select_hosts([]) == []  # testinfra: no host, the tests are skipped


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ansible://client", "(?s)'client', which is no node or group.*did you mean 'clients'"),
        ("local://", "the specs run in the nodes"),
        (3, "holds 3, not a host name"),
    ],
)
def test_testinfra_hosts_naming_no_node_are_refused(tmp_path: Path, spec: object, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        _layout(tmp_path, CLUSTER).select_hosts([spec], where="tests/test_x.py")
    assert err.value.where == "tests/test_x.py"


def test_without_nodes_the_platform_name_is_the_single_node(tmp_path: Path) -> None:
    layout = _layout(tmp_path, "provisioner: {name: shell}\n")
    assert layout.select_hosts(["ansible://debian-12"], ["debian-12"]) == [""]
    assert layout.select_hosts(["all"], ["debian-12"]) == [""]
    with pytest.raises(SettingsError, match="single node of each platform: debian-12"):
        layout.select_hosts(["web"], ["debian-12"])


def test_the_session_inventory_answers_testinfras_ansible_runner(
    tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Molecule spec asks at collection time, answered from the inventory written
    before any node exists (by ansible-inventory, as testinfra runs it)."""
    from testinfra.utils.ansible_runner import AnsibleRunner

    # the tools next to this Python, as the plugin puts them on PATH for a Molecule scenario
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    path = tools_path(os.environ, Path(sys.executable).parent)
    assert path is not None
    monkeypatch.setenv("PATH", path)
    (tmp_path / "site.yml").write_text("- hosts: all\n")
    yaml = (
        "provisioner:\n  name: ansible\n  playbook: site.yml\n"
        "  groups: {servers: [server-1], clients: [client-1, client-2]}\n"
        "  host_vars: {server-1: {cluster_port: 7001}}\n" + CLUSTER.split("\n", 1)[1]
    )
    (tmp_path / "infranode.yaml").write_text(yaml)
    settings = build_settings(RawOptions(cli_platforms=["debian-12"]), tmp_path)
    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(ansible)
    session = InfraSession(settings, manager.hook, log_dir=tmp_path / "logs")
    [inventory] = session.write_inventories()
    assert inventory.parent.parent == tmp_path / "logs"  # in a folder of its own
    runner = AnsibleRunner(str(inventory))
    assert runner.get_hosts("servers") == ["server-1"]
    assert runner.get_hosts("clients") == ["client-1", "client-2"]
    assert runner.get_variables("server-1")["cluster_port"] == 7001
    assert session.select_hosts(runner.get_hosts("servers")) == ["server-1"]
    # host.ansible on a node's host, through the same inventory (the node itself is not reached)
    from pytest_infranode.backend import make_host

    node = Node(engine, DEBIAN_12, session_id=session.session_id, image="img", short_name="server-1")
    host = make_host(node, inventory=(str(inventory), session.inventory_name(node)))
    variables = host.ansible.get_variables()
    assert variables["inventory_hostname"] == "server-1"
    assert sorted(variables["group_names"]) == ["all", "servers"]  # testinfra adds all
    assert variables["ansible_host"] == session.node_name(Target(session.platforms[0], "server-1"))
    assert not make_host(node).backend.HAS_RUN_ANSIBLE  # without an inventory: testinfra's error


def test_a_run_over_several_nodes_has_live_progress_lines(tmp_path: Path, engine: FakeEngine) -> None:
    """The converge hook (which the progress wraps for one node) is not called for a run over
    several nodes: the session gives the run, and its idempotence run, a progress of their own,
    labelled with the nodes' names and read from the run's log with the provisioner's steps."""
    together = Together()
    lines: list[str] = []
    progress = ProgressPlugin(lines.append, tmp_path / "logs", tty=False)
    made: list[tuple[str, Path, str]] = []
    seen_during: list[int] = []

    class Recorded:
        def __init__(self, label: str, log: Path, provisioner: Provisioner) -> None:
            made.append((label, log, provisioner.name))
            self.inner = progress.progress_of_run(label, log, provisioner)

        def __enter__(self) -> object:
            self.inner.__enter__()
            seen_during.append(len(together.runs))
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)

    session = _session(tmp_path, NODES, together, extra=progress, cli_idempotence=True)
    session.run_progress = Recorded
    d12 = session.platforms[0]
    session.plan([Target(d12, "client-1")])
    node = session.node_for(d12, "client-1")
    log = Path(node.converge_log)
    assert made == [("server-1, client-1, client-2", log, "together")] * 2  # the run, the idempotence run
    assert seen_during == [0, 1]  # entered before each run
    run = progress.progress_of_run("server-1, client-1, client-2", log, together)
    run.feed(b"$ together-tool --all\nworking\n")
    line = run.tick(time.monotonic() + 60)
    assert line is not None
    assert line.startswith("server-1, client-1, client-2: converging (")
    assert line.endswith("s): $ together-tool --all")
    session.teardown()


def test_the_converge_cache_refuses_a_run_over_several_nodes_saying_why(
    tmp_path: Path, engine: FakeEngine
) -> None:
    """A node converged with others may hold what the run learnt of them (addresses, container
    names, new each session): restored from a cache next to new ones it would be stale. Once
    per run, the session says the cache is not used for those nodes, and why; none is saved."""
    said: list[str] = []
    session = _session(tmp_path, NODES, Together(), say=said.append, cli_cache="converge")
    d12 = session.platforms[0]
    session.plan([Target(d12, "client-1")])
    session.node_for(d12, "client-1")
    refusals = [line for line in said if "--infra-cache=converge is not used" in line]
    assert refusals == [
        "debian-12: --infra-cache=converge is not used for nodes server-1, client-1, client-2: "
        + convergecache.GROUP_RUN
    ]
    assert all(n.converge_cache == "off" for n in session.nodes_of(d12).values())
    assert not [op for op, _ in engine.calls if op == "commit"]  # no converged image saved
    session.teardown()
