"""InfraSession end to end on the fake engine: bring-up, converge, keep policy, teardown and
the summary, with the real hooks and the shell provisioner. No daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy
import pytest

from pytest_infranode import hookspecs
from pytest_infranode import reaper
from pytest_infranode import summary
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.core import Engine
from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import NodeError
from pytest_infranode.provisioners import bare
from pytest_infranode.provisioners import shell
from pytest_infranode.session import InfraSession
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from pytest_infranode.targets import Target
from tests.unit.fakes import FakeEngine


class NoWatchdog:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def release(self) -> None:
        pass


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(Engine, "connect", classmethod(lambda cls, docker_host=None, **kw: fake))
    monkeypatch.setattr(reaper, "Watchdog", NoWatchdog)
    return fake


def _session(tmp_path: Path, yaml: str, **options: Any) -> InfraSession:
    (tmp_path / "infranode.yaml").write_text(yaml)
    settings = build_settings(RawOptions(cli_platforms=["debian-12,debian-13"], **options), tmp_path)
    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(shell)
    manager.register(bare)
    session = InfraSession(settings, manager.hook, log_dir=tmp_path / "logs")
    manager.register(session)
    session.check_provisioner()
    return session


CONVERGE = "provisioner: {name: shell, inline: ['echo converged']}\n"


@pytest.mark.parametrize("parallel", [1, 2])
def test_nodes_are_made_converged_and_removed(tmp_path: Path, engine: FakeEngine, parallel: int) -> None:
    session = _session(tmp_path, CONVERGE, cli_parallel=parallel)
    d12, d13 = session.platforms
    session.plan([Target(d12), Target(d13)])
    node = session.node_for(d12)
    assert node.state == "converged"
    assert "echo converged" in Path(node.converge_log).read_text()
    assert session.node_for(d13).state == "converged"
    assert ("exec", "/bin/sh -c echo converged") in engine.calls
    session.teardown()
    assert engine.names() == []
    table = session.node_table()
    assert table[0].split() == ["platform", "node", "image", "cache", "boot", "converge", "ready", "result"]
    assert [row.split()[-1] for row in table[1:-1]] == ["removed", "removed"]
    assert table[-1] == summary.LEGEND


def test_a_failed_converge_is_removed_at_once_and_fails_its_tests(tmp_path: Path, engine: FakeEngine) -> None:
    engine.exec_answers["exit 3"] = ExecResult(3, b"no\n", b"")
    session = _session(tmp_path, "provisioner: {name: shell, inline: ['exit 3']}\n", cli_parallel=1)
    d12 = session.platforms[0]
    with pytest.raises(ConvergeError, match="exited with status 3") as first:
        session.node_for(d12)
    with pytest.raises(ConvergeError) as again:
        session.node_for(d12)
    assert again.value is first.value
    assert engine.names() == []  # --infra-keep=never: gone before the tests report
    assert session.keep.failed_platforms == {"debian-12"}
    session.teardown()
    assert session.node_table()[1].endswith("failed, removed")


def test_keep_failure_keeps_the_nodes_of_a_failed_platform(tmp_path: Path, engine: FakeEngine) -> None:
    session = _session(tmp_path, CONVERGE, cli_keep="failure", cli_parallel=1)
    d12, d13 = session.platforms
    kept, removed = session.node_for(d12), session.node_for(d13)
    session.record_failure(d12)
    session.teardown()
    assert engine.names() == [kept.name]
    assert kept.name.endswith(reaper.KEPT_SUFFIX)
    assert removed.state == "removed"
    assert session.summary_lines()[0].startswith(f"kept {kept.name} (debian-12): enter it with")
    assert session.summary_lines()[0].endswith(f"with `infranode cleanup --session {session.session_id}`")


def test_a_platform_done_with_is_removed_before_the_end(tmp_path: Path, engine: FakeEngine) -> None:
    session = _session(tmp_path, CONVERGE, cli_parallel=1)
    d12, d13 = session.platforms
    first = session.node_for(d12)
    session.last_use = {"debian-12": 0, "debian-13": 1}
    session.position = 1
    session.done_with(d12)
    assert first.state == "removed"
    with pytest.raises(NodeError, match="was removed after the last test"):
        session.node_for(d12)
    session.node_for(d13)
    session.teardown()
    assert engine.names() == []


def test_depends_on_orders_the_nodes_of_a_platform(tmp_path: Path, engine: FakeEngine) -> None:
    yaml = CONVERGE + "nodes:\n  web: {depends_on: [db]}\n  db: {}\n"
    session = _session(tmp_path, yaml, cli_parallel=2)
    d12 = session.platforms[0]
    session.plan([Target(d12, "web")])
    nodes = session.nodes_of(d12)
    assert list(nodes) == ["web", "db"]
    creates = [subject for op, subject in engine.calls if op == "create"]
    assert creates == [session.node_name(Target(d12, "db")), session.node_name(Target(d12, "web"))]
    assert [op for op, _ in engine.calls if op == "create_network"] == ["create_network"]
    session.teardown()
    assert engine.names() == []
    assert engine.networks == {}


def test_without_a_provisioner_the_node_is_bare_and_the_summary_says_so(
    tmp_path: Path, engine: FakeEngine
) -> None:
    session = _session(tmp_path, "boot_timeout: 60\n", cli_parallel=1)
    node = session.node_for(session.platforms[0])
    assert node.state == "converged"
    assert node.bare
    assert "converge" not in node.timings
    assert [c for c in engine.calls if c[0] in ("exec", "put_files")] == []  # nothing ran in it
    session.teardown()
    header, row = session.node_table()[:2]
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert cells["converge"] == "none"
    assert cells["boot"].endswith("s")
    assert cells["ready"].endswith("s")


def test_a_kernel_without_ipv6_gets_its_nodes_made_again_without_the_ipv6_default(
    tmp_path: Path, engine: FakeEngine
) -> None:
    # A host booted with ipv6.disable=1: the default `::1 on the loopback` cannot be made.
    engine.kernel_ipv6 = False
    session = _session(tmp_path, CONVERGE, cli_parallel=1)
    d12, d13 = session.platforms
    first = session.node_for(d12)
    assert first.state == "converged"
    assert engine.sysctls_of[first.container_id] == {}
    starts = [name for op, name in engine.calls if op == "start"]
    assert starts == [first.name, first.name]  # the first container failed, removed, made again
    # Learnt once: the next platform's node is made without it from the start.
    second = session.node_for(d13)
    assert [name for op, name in engine.calls if op == "start"].count(second.name) == 1
    session.teardown()
    assert engine.names() == []


def test_an_ipv6_sysctl_of_the_node_itself_on_a_kernel_without_ipv6_is_an_error_naming_it(
    tmp_path: Path, engine: FakeEngine
) -> None:
    engine.kernel_ipv6 = False
    yaml = CONVERGE + "nodes:\n  web:\n    sysctls: {net.ipv6.conf.all.disable_ipv6: '0'}\n"
    session = _session(tmp_path, yaml, cli_parallel=1)
    with pytest.raises(NodeError, match=r"kernel has no IPv6 .*net\.ipv6\.conf\.all\.disable_ipv6") as err:
        session.node_for(session.platforms[0], "web")
    assert "take net.ipv6.conf.all.disable_ipv6 out of the node's `sysctls:`" in str(err.value)
    session.teardown()
    assert engine.names() == []
