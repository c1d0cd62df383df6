"""Claims on kept nodes (``claims.py``): --infra-reuse sessions on one fake engine, and the
sweeps that must spare a node a live session holds. The fake daemon, like Docker's, refuses a
second container under one name. No daemon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pytest_infranode import claims
from pytest_infranode import cli
from pytest_infranode import hookspecs
from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.core import Engine
from pytest_infranode.provisioners import shell
from pytest_infranode.session import InfraSession
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from tests.unit.fakes import FakeEngine

CONVERGE = "provisioner: {name: shell, inline: ['echo converged']}\n"
LIVE = {labels.PID: f"{os.uname().nodename}:{os.getpid()}", labels.CREATED: "1"}
GONE = {labels.PID: "another-machine:1", labels.CREATED: "1"}


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


def _session(tmp_path: Path, **options: Any) -> InfraSession:
    (tmp_path / "infranode.yaml").write_text(CONVERGE)
    settings = build_settings(RawOptions(cli_platforms=["debian-12"], cli_parallel=1, **options), tmp_path)
    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(shell)
    session = InfraSession(settings, manager.hook, log_dir=tmp_path / "logs")
    manager.register(session)
    session.check_provisioner()
    return session


def _kept_node(tmp_path: Path) -> str:
    """Run a session that keeps its node; the kept container's id."""
    first = _session(tmp_path, cli_keep="always")
    node = first.node_for(first.platforms[0])
    first.teardown()
    assert node.name.endswith(reaper.KEPT_SUFFIX)
    return node.container_id


def _markers(engine: FakeEngine) -> list[str]:
    return sorted(c.name for c in engine.list_containers([labels.CLAIM]))


def test_of_two_reusing_sessions_one_claims_the_kept_node_and_the_other_makes_its_own(
    tmp_path: Path, engine: FakeEngine
) -> None:
    kept_id = _kept_node(tmp_path)
    winner, loser = _session(tmp_path, cli_reuse=True), _session(tmp_path, cli_reuse=True)
    taken = winner.node_for(winner.platforms[0])
    assert (taken.reused, taken.container_id) == (True, kept_id)
    assert _markers(engine) == [claims.marker_name(kept_id)]
    assert claims.claimed_by(engine.list_containers([labels.CLAIM])) == {kept_id: winner.session_id}

    own = loser.node_for(loser.platforms[0])
    assert not own.reused
    assert own.container_id != kept_id
    assert own.state == "converged"
    assert ("claim", taken.name) in engine.calls  # the loser tried, and was refused
    # The loser ends first: its own node goes, the one the winner holds stays.
    loser.teardown()
    assert kept_id in engine.containers
    assert own.container_id not in engine.containers
    # Without --infra-keep the winner consumes the node it took over; its claim goes with it.
    winner.teardown()
    assert engine.names() == []


def test_a_reused_node_kept_again_is_released_for_the_next_session(
    tmp_path: Path, engine: FakeEngine
) -> None:
    kept_id = _kept_node(tmp_path)
    first = _session(tmp_path, cli_reuse=True, cli_keep="always")
    node = first.node_for(first.platforms[0])
    first.teardown()
    assert engine.names() == [node.name]  # kept again, the claim released
    original = node.labels[labels.SESSION]
    assert first.summary_lines()[0].endswith(f"`infranode cleanup --session {original}`")
    assert original != first.session_id
    again = _session(tmp_path, cli_reuse=True)
    assert again.node_for(again.platforms[0]).container_id == kept_id
    again.teardown()
    assert engine.names() == []


def _container(engine: FakeEngine, name: str, session: str, owner: dict[str, str]) -> str:
    return engine.create_container(ContainerSpec(name, "img", name, {labels.SESSION: session, **owner}))


def test_cleanup_spares_a_kept_node_a_live_session_holds_and_removes_it_once_released() -> None:
    engine = FakeEngine()
    kept = _container(engine, "old" + reaper.KEPT_SUFFIX, "s-old", GONE)
    marker = claims.claim(engine, kept, session_id="s-live", owner=LIVE[labels.PID])
    assert marker
    told: list[tuple[str, str]] = []
    assert reaper.sweep_expired(engine, include_kept=True, in_use=lambda *a: told.append(a)) == []
    assert reaper.sweep(engine, session_id="s-old", in_use=lambda *a: told.append(a)) == []
    assert told == [("old-kept", "s-live")] * 2
    assert kept in engine.containers
    assert marker in engine.containers
    engine.remove_container(marker)  # the live session ends and releases it
    assert reaper.sweep_expired(engine, include_kept=True) == ["old-kept"]
    assert engine.names() == []  # the sweep's own claim went with the node


def test_a_dead_sessions_claim_goes_first_and_its_node_with_it() -> None:
    engine = FakeEngine()
    _container(engine, "old" + reaper.KEPT_SUFFIX, "s-old", GONE)
    kept = next(iter(engine.containers))
    claimed = claims.claim(engine, kept, session_id="s-crashed", owner=GONE[labels.PID])
    engine.containers[claimed].labels[labels.CREATED] = "1"
    assert reaper.sweep_expired(engine, include_kept=True) == ["old-kept"]  # claims are not nodes
    assert engine.names() == []


def test_the_sweep_at_session_start_leaves_kept_nodes_and_live_claims() -> None:
    engine = FakeEngine()
    kept = _container(engine, "old" + reaper.KEPT_SUFFIX, "s-old", GONE)
    claims.claim(engine, kept, session_id="s-live", owner=LIVE[labels.PID])
    assert reaper.sweep_expired(engine) == []
    assert engine.names() == [claims.marker_name(kept), "old-kept"]


def test_a_claim_is_made_once_per_container_and_not_on_a_missing_one() -> None:
    engine = FakeEngine()
    kept = _container(engine, "a-kept", "s1", GONE)
    assert claims.claim(engine, kept, session_id="s2", owner="h:2")
    assert claims.claim(engine, kept, session_id="s3", owner="h:3") == ""
    assert claims.claim(engine, "0" * 64, session_id="s3", owner="h:3") == ""
    (marker,) = engine.list_containers([labels.CLAIM])
    assert claims.is_marker(marker)
    assert marker.labels[labels.SESSION] == "s2"
    assert marker.labels[labels.PID] == "h:2"
    assert marker.name == claims.marker_name(kept)
    assert claims.claimed_by(engine.list_containers([])) == {kept: "s2"}


def test_the_cli_says_which_kept_node_a_live_session_uses_and_spares_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine()
    kept = _container(engine, "old" + reaper.KEPT_SUFFIX, "s-old", GONE)
    _container(engine, "dead", "s-old", GONE)
    claims.claim(engine, kept, session_id="s-live", owner=LIVE[labels.PID])
    monkeypatch.setattr(cli, "_engine", lambda _args: engine)
    assert cli.main(["nodes"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["old-kept", "dead"]  # the claim is no node
    assert listed[0].endswith("in use by session s-live")
    assert cli.main(["cleanup"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "removed dead",
        "kept old-kept: in use by session s-live (--infra-reuse), not removed",
        "1 node(s) removed",
    ]
    assert engine.names() == [claims.marker_name(kept), "old-kept"]
