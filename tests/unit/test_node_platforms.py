"""Nodes of their own platform (``nodes.NAME.platform``, the import's layout of a Molecule
scenario whose platforms have different images): where each node is made, and how
``--infra-platform`` re-targets the scenario. No daemon."""

from __future__ import annotations

from pathlib import Path

import pluggy
import pytest

from pytest_infranode import hookspecs
from pytest_infranode import reaper
from pytest_infranode.engine.core import Engine
from pytest_infranode.errors import SettingsError
from pytest_infranode.errors import UnknownPlatform
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.session import InfraSession
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import Target
from tests.unit.fakes import FakeEngine
from tests.unit.test_converge_together import Plugin
from tests.unit.test_converge_together import Together

SCENARIO = (
    "platforms: [debian-12, debian-13]\n"
    "provisioner: {name: shell, inline: ['true']}\n"
    "nodes:\n"
    "  server: {groups: [servers], platform: debian-13}\n"
    "  client: {groups: [clients], platform: debian-12}\n"
    "  helper: {}\n"
)
BY_NAME = {p.name: p for p in BUILTIN_PLATFORMS}


def _layout(tmp_path: Path, yaml: str = SCENARIO, cli: list[str] | None = None) -> NodeLayout:
    (tmp_path / "infranode.yaml").write_text(yaml)
    return NodeLayout(build_settings(RawOptions(cli_platforms=cli) if cli else RawOptions(), tmp_path))


def test_on_the_scenarios_own_platforms_each_node_is_made_on_its_own(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    assert [p.name for p in layout.settings.platforms] == ["debian-12", "debian-13"]
    assert layout.names_on("debian-13") == ["server", "helper"]  # a node without platform: everywhere
    assert layout.names_on("debian-12") == ["client", "helper"]
    assert layout.default_on("debian-12") == "client"
    assert layout.converged_together("server", "debian-13") == ["server", "helper"]
    targets = [Target(BY_NAME["debian-12"], "client"), Target(BY_NAME["debian-13"], "server")]
    wanted = [t.key for t in layout.plan([*targets, Target(BY_NAME["debian-12"], "server")])]
    assert wanted == ["debian-12/client", "debian-13/server"]  # no server is made on debian-12


def test_a_platform_no_node_names_gets_every_node_with_its_groups(tmp_path: Path) -> None:
    """--infra-platform=ubuntu-24.04 re-targets the scenario: one node set there, all of them."""
    layout = _layout(tmp_path, cli=["ubuntu-24.04"])
    assert layout.names_on("ubuntu-24.04") == ["server", "client", "helper"]
    assert layout.default_on("ubuntu-24.04") == "server"
    assert layout.converged_together("client", "ubuntu-24.04") == ["server", "client", "helper"]
    assert layout.select(group="servers") == ["server"]
    assert layout.select_hosts(["ansible://clients"]) == ["client"]


def test_a_nodes_platform_given_by_an_alias_is_its_name(tmp_path: Path) -> None:
    layout = _layout(tmp_path, SCENARIO.replace("platform: debian-13", "platform: debian-trixie"))
    assert layout.configs["server"].platform == "debian-13"


def test_an_unknown_platform_of_a_node_is_refused_with_where(tmp_path: Path) -> None:
    with pytest.raises(UnknownPlatform) as err:
        _layout(tmp_path, SCENARIO.replace("platform: debian-13", "platform: debain-13"))
    assert "infranode.yaml:4 (nodes.server).platform" in str(err.value)
    assert "debian-13" in str(err.value)


def test_a_node_depending_on_a_node_of_another_platform_is_refused(tmp_path: Path) -> None:
    yaml = SCENARIO.replace("platform: debian-12}", "platform: debian-12, depends_on: [server]}")
    with pytest.raises(SettingsError) as err:
        _layout(tmp_path, yaml)
    assert "node 'client' depends on 'server', which is made on platform 'debian-13' only" in str(err.value)
    assert "infranode.yaml:5 (nodes.client.depends_on)" in str(err.value)
    assert "same `platform:`" in str(err.value)


def test_a_platform_that_is_no_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="platform of node 'helper' must be a platform name, not 12"):
        _layout(tmp_path, SCENARIO.replace("helper: {}", "helper: {platform: 12}"))


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(Engine, "connect", classmethod(lambda cls, docker_host=None, **kw: fake))
    monkeypatch.setattr(reaper, "Watchdog", lambda *a, **k: type("W", (), {"release": lambda self: None})())
    return fake


def _session(folder: Path, yaml: str, provisioner: Together, cli: list[str]) -> InfraSession:
    (folder / "infranode.yaml").write_text(yaml)
    settings = build_settings(RawOptions(cli_platforms=cli), folder)
    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(Plugin(provisioner))
    session = InfraSession(settings, manager.hook, log_dir=folder / "logs")
    manager.register(session)
    session.check_provisioner()
    return session


def test_a_session_makes_each_node_on_its_own_platform_and_re_targeted_every_node(
    tmp_path: Path, engine: FakeEngine
) -> None:
    """On the fake engine: on the scenario's own platforms each platform's inventory and nodes
    are its own nodes (converged in one run there); re-targeted, one platform has them all."""
    together = Together()
    (tmp_path / "own").mkdir()
    yaml = SCENARIO.replace("provisioner: {name: shell, inline: ['true']}", "provisioner: {name: together}")
    session = _session(tmp_path / "own", yaml, together, cli=["debian-12", "debian-13"])
    d12, d13 = session.platforms
    assert [h.name for h in session.inventory_hosts(d12)] == ["client", "helper"]
    assert [h.name for h in session.inventory_hosts(d13)] == ["server", "helper"]
    session.plan([Target(d12, "client"), Target(d13, "server")])
    assert sorted(session.nodes_of(d13)) == ["helper", "server"]
    assert sorted(session.nodes_of(d12)) == ["client", "helper"]
    assert sorted(run[0] for run in together.runs) == [["client", "helper"], ["server", "helper"]]
    assert len([op for op, _ in engine.calls if op == "create"]) == 4
    session.teardown()
    assert engine.names() == []

    again = Together()
    (tmp_path / "retarget").mkdir()
    session = _session(tmp_path / "retarget", yaml, again, cli=["ubuntu-24.04"])
    (u24,) = session.platforms
    assert [h.name for h in session.inventory_hosts(u24)] == ["server", "client", "helper"]
    session.plan([Target(u24, "server")])
    assert sorted(session.nodes_of(u24)) == ["client", "helper", "server"]
    assert again.runs == [(["server", "client", "helper"], [], 1)]  # one run over all of them
    session.teardown()
    assert engine.names() == []


SPAN = SCENARIO.replace("  helper: {}\n", "")
"""Every node on a platform of its own (the import's different-images layout)."""


def test_on_the_scenarios_own_platforms_every_node_named_is_one_span(tmp_path: Path) -> None:
    layout = _layout(tmp_path, SPAN)
    assert layout.span() == ["debian-12", "debian-13"]  # the session's order
    assert layout.home("debian-13") == "debian-12"  # one network, one inventory: the first's
    assert layout.span_of("debian-13") == ["debian-12", "debian-13"]  # removed and kept as one
    assert layout.members("debian-13") == [("debian-13", "server"), ("debian-12", "client")]
    assert layout.converged_together("server", "debian-13") == ["server", "client"]
    assert layout.names_on("debian-13") == ["server"]  # the tests of a platform: its own node


def test_a_node_made_everywhere_or_a_platform_re_targeted_to_is_no_span(tmp_path: Path) -> None:
    assert _layout(tmp_path).span() == []  # helper is made on both: each platform its own set
    assert _layout(tmp_path).home("debian-13") == "debian-13"
    assert _layout(tmp_path).span_of("debian-13") == ["debian-13"]
    retargeted = _layout(tmp_path, SPAN, cli=["ubuntu-24.04"])
    assert retargeted.span() == []
    assert retargeted.members("ubuntu-24.04") == [("ubuntu-24.04", "server"), ("ubuntu-24.04", "client")]
    alone = _layout(tmp_path, SPAN, cli=["debian-12"])  # one of the scenario's platforms only
    assert alone.span() == []
    assert alone.names_on("debian-12") == ["client"]
    assert alone.converged_together("client", "debian-12") == []
    beside = _layout(tmp_path, SPAN, cli=["debian-13", "debian-12", "ubuntu-24.04"])
    assert beside.span() == ["debian-13", "debian-12"]  # and ubuntu-24.04 has every node, alone
    assert beside.home("ubuntu-24.04") == "ubuntu-24.04"
    assert beside.converged_together("server", "ubuntu-24.04") == ["server", "client"]


def test_a_span_is_made_in_one_run_over_one_inventory_on_one_network(
    tmp_path: Path, engine: FakeEngine
) -> None:
    """On the fake engine: the nodes of a span are booted first, each from its own platform's
    image, on one network, then converged in one run over one inventory that holds both; the
    platforms' tests each get their own node, and MOLECULE_INVENTORY_FILE's file is the one."""
    together = Together()
    yaml = SPAN.replace("provisioner: {name: shell, inline: ['true']}", "provisioner: {name: together}")
    session = _session(tmp_path, yaml, together, cli=["debian-12", "debian-13"])
    d12, d13 = session.platforms
    assert session.inventory_path(d12) == session.inventory_path(d13)
    assert session.write_inventories() == [session.inventory_path(d12)]  # one file, written once
    hosts = session.inventory_hosts(d13)
    assert [(h.name, h.platform.name) for h in hosts] == [("server", "debian-13"), ("client", "debian-12")]
    session.plan([Target(d12, "client"), Target(d13, "server")])
    client = session.node_for(d12, "client")
    server = session.node_for(d13, "server")
    assert together.runs == [(["server", "client"], [], 1)]  # one run over both, after both booted
    assert client.network == server.network == f"infranode-{session.session_id}-debian-12"
    images = {c.name: c.image for c in engine.containers.values()}
    assert images[client.name] == "sha256:prepared-debian-12"
    assert images[server.name] == "sha256:prepared-debian-13"
    assert [s for op, s in engine.calls if op == "create_network"] == [client.network]
    inventory = session.inventory_path(d13).read_text()
    assert server.container_id in inventory
    assert client.container_id in inventory
    assert sorted(session.nodes_of(d13)) == ["server"]  # infra_nodes: the platform's own
    session.record_failure(d13)  # a failed test of one platform keeps the whole span
    assert session.keep.failed_platforms == {"debian-12", "debian-13"}
    # the first platform's tests are done, the second's are not: its nodes stay (the span is one)
    session.last_use = {"debian-12": 0, "debian-13": 1}
    session.position = 1
    session.done_with(d12)
    assert client.state != "removed"
    session.position = 2
    session.done_with(d13)
    session.wait_for_all()
    session.teardown()
    assert engine.names() == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [("", ["verify[debian-12]"]), ("  helper: {}\n", ["verify[debian-12]", "verify[debian-13]"])],
    ids=["span", "a-node-everywhere"],
)
def test_the_verify_playbook_is_one_test_for_a_span(
    pytester: pytest.Pytester, extra: str, expected: list[str]
) -> None:
    """Collection only (no daemon): Molecule runs verify.yml once over its inventory, and a span
    has one; platforms that are sets of their own get a test each."""
    pytester.makefile(".yml", converge="- hosts: all\n  tasks: []\n", verify="- hosts: all\n  tasks: []\n")
    pytester.makefile(
        ".yaml",
        infranode=SPAN.replace(
            "provisioner: {name: shell, inline: ['true']}",
            "provisioner: {name: ansible, playbook: converge.yml, verify: verify.yml}",
        )
        + extra,
    )
    result = pytester.runpytest("--collect-only", "-q", "verify.yml")
    assert [line.split("::", 1)[1] for line in result.stdout.lines if "::" in line] == expected
