"""The keep policy: which nodes stay, and when a failed node goes at once. No daemon."""

from __future__ import annotations

import pytest

from pytest_infranode import labels
from pytest_infranode.keep import KeepPolicy
from pytest_infranode.keep import keep_workers_nodes
from pytest_infranode.keep import keeps
from pytest_infranode.keep import removes_failed_node_at_once
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog
from pytest_infranode.reaper import KEPT_SUFFIX
from tests.unit.fakes import FakeEngine

D12 = Catalog().get("debian-12")
D13 = Catalog().get("debian-13")


@pytest.mark.parametrize(
    ("policy", "failed", "kept"),
    [
        ("never", False, False),
        ("never", True, False),
        ("failure", False, False),
        ("failure", True, True),
        ("always", False, True),
        ("always", True, True),
    ],
)
def test_keeps(policy: str, failed: bool, kept: bool) -> None:
    assert keeps(policy, platform_failed=failed) is kept  # type: ignore[arg-type]


def test_a_failed_node_goes_at_once_only_when_nothing_may_keep_it() -> None:
    assert removes_failed_node_at_once("never")
    assert not removes_failed_node_at_once("failure")
    assert not removes_failed_node_at_once("always")


def _node(engine: FakeEngine, platform: object = D12) -> Node:
    node = Node(engine, platform, session_id="0123456789abcdef", image="img")  # type: ignore[arg-type]
    node.create()
    return node


def test_failures_of_a_platform_keep_its_nodes_only() -> None:
    told: list[str] = []
    policy = KeepPolicy("failure", tell_others=told.append)
    engine = FakeEngine()
    on_12, on_13 = _node(engine), _node(engine, D13)
    policy.record_failure("debian-12")  # a node could not be made: not a test's failure
    assert told == []
    policy.record_failure("debian-12", by_test=True)
    assert told == ["debian-12"]
    assert policy.should_keep(on_12)
    assert not policy.should_keep(on_13)


def test_after_failure_removes_unless_kept() -> None:
    engine = FakeEngine()
    removed: list[Node] = []
    node = _node(engine)
    KeepPolicy("failure").after_failure(node, removed.append)
    assert removed == []
    KeepPolicy("never").after_failure(node, removed.append)
    assert removed == [node]


def test_a_kept_node_is_renamed_and_says_so() -> None:
    engine = FakeEngine()
    node = _node(engine)
    assert node.keep(KEPT_SUFFIX) is None
    assert node.name.endswith(KEPT_SUFFIX)
    assert node.outcome == "kept"
    assert engine.names() == [node.name]
    assert node.keep(KEPT_SUFFIX) is None  # already kept: not renamed twice
    assert engine.calls.count(("rename", node.name)) == 1


def test_the_controller_keeps_the_workers_nodes_of_failed_platforms() -> None:
    engine = FakeEngine()
    nodes = [_node(engine), _node(engine, D13)]
    problems: list[str] = []
    kept, ids = keep_workers_nodes(
        engine, nodes[0].session_id, KeepPolicy("failure"), {"debian-13"}, problems.append
    )
    assert [k.platform for k in kept] == ["debian-13"]
    assert ids == {nodes[1].container_id}
    assert kept[0].name == nodes[1].name + KEPT_SUFFIX
    assert problems == []
    assert keep_workers_nodes(engine, nodes[0].session_id, KeepPolicy("never"), set(), problems.append) == (
        [],
        set(),
    )
    assert labels.SESSION in engine.containers[nodes[0].container_id].labels


def test_at_the_end_the_kept_nodes_are_renamed_and_the_rest_returned_to_remove() -> None:
    engine = FakeEngine()
    on_12, on_13, never_made = (
        _node(engine),
        _node(engine, D13),
        Node(engine, D12, session_id="0" * 16, image="i"),
    )
    policy = KeepPolicy("failure")
    policy.record_failure("debian-12", by_test=True)
    problems: list[str] = []
    kept, ids, doomed = policy.at_end([on_12, on_13, never_made], problems.append)
    assert [k.name for k in kept] == [on_12.name]
    assert on_12.name.endswith(KEPT_SUFFIX)
    assert kept[0].platform == "debian-12"
    assert ids == {on_12.container_id}
    assert doomed == [on_13, never_made]  # a node without a container is never kept
    assert on_12.outcome == "kept"
    assert problems == []
