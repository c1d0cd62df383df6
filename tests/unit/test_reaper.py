"""The reaper's sweeps on the shared fake engine: which containers and networks go. No daemon."""

from __future__ import annotations

import os

from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.engine.api import ContainerInfo
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import NetworkInfo
from tests.unit.fakes import FakeEngine

HERE = os.uname().nodename
LIVE = {labels.PID: f"{HERE}:{os.getpid()}", labels.CREATED: "1"}
"""A session whose process is this one: never expired."""
GONE = {labels.PID: "another-machine:1", labels.CREATED: "1"}
"""A session of another machine, older than any time-to-live: expired."""


def _container(engine: FakeEngine, name: str, session: str, owner: dict[str, str]) -> str:
    spec = ContainerSpec(name, "img", name, {labels.SESSION: session, **owner})
    return engine.create_container(spec)


def test_sweep_removes_one_sessions_containers_and_networks_but_spares_kept_ids() -> None:
    engine = FakeEngine()
    mine = _container(engine, "a", "s1", LIVE)
    kept = _container(engine, "b", "s1", LIVE)
    _container(engine, "c", "s2", LIVE)
    engine.create_network("net-s1", {labels.SESSION: "s1"})
    engine.create_network("net-s2", {labels.SESSION: "s2"})
    assert reaper.sweep(engine, session_id="s1", keep=frozenset({kept})) == ["a"]
    assert mine not in engine.containers
    assert engine.names() == ["b", "c"]
    assert sorted(engine.networks) == ["net-s2"]


def test_sweep_without_a_session_removes_every_sessions_containers() -> None:
    engine = FakeEngine()
    _container(engine, "a", "s1", LIVE)
    _container(engine, "b", "s2", GONE)
    assert sorted(reaper.sweep(engine)) == ["a", "b"]
    assert engine.names() == []


def test_sweep_expired_spares_live_sessions_and_kept_nodes() -> None:
    engine = FakeEngine()
    _container(engine, "live", "s1", LIVE)
    _container(engine, "dead", "s2", GONE)
    _container(engine, "dead" + reaper.KEPT_SUFFIX, "s2", GONE)
    _container(engine, "gone-too", "s3", GONE)
    engine.create_network("net-s1", {labels.SESSION: "s1", **LIVE})
    engine.create_network("net-s2", {labels.SESSION: "s2", **GONE})
    engine.create_network("net-s3", {labels.SESSION: "s3", **GONE})
    assert sorted(reaper.sweep_expired(engine, exclude="s3")) == ["dead"]
    assert engine.names() == ["dead-kept", "gone-too", "live"]
    # A kept node keeps its session's network; the excluded and the live sessions keep theirs.
    assert sorted(engine.networks) == ["net-s1", "net-s2", "net-s3"]
    assert sorted(reaper.sweep_expired(engine, include_kept=True, exclude="s3")) == ["dead-kept"]
    assert sorted(engine.networks) == ["net-s1", "net-s3"]


def test_sessions_groups_containers_and_networks_by_their_labels() -> None:
    engine = FakeEngine()
    _container(engine, "a", "s1", {labels.PID: "h:1", labels.CREATED: "5"})
    _container(engine, "b", "s1", {labels.PID: "h:1", labels.CREATED: "7"})
    _container(engine, "unlabelled", "", {})
    engine.create_network("net-s2", {labels.SESSION: "s2", labels.CREATED: "bad"})
    found: list[ContainerInfo | NetworkInfo] = [*engine.list_containers([]), *engine.list_networks([])]
    assert reaper.sessions(found) == [
        reaper.SessionSeen("s1", "h:1", 7.0, ("a", "b")),
        reaper.SessionSeen("s2", "", 0.0, ("net-s2",)),
    ]
