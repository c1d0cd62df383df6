"""The bring-up scheduler: one path for every node, and one failure handler. No daemon."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_infranode.bringup import BringUp
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import NodeError
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import Target
from tests.unit.fakes import FakeEngine

D12 = Catalog().get("debian-12")
D13 = Catalog().get("debian-13")
NODES = "nodes:\n  web: {depends_on: [db]}\n  db: {}\n  cache: {}\n"


def _layout(tmp_path: Path, yaml: str = "") -> NodeLayout:
    if yaml:
        (tmp_path / "infranode.yaml").write_text(yaml)
    return NodeLayout(build_settings(RawOptions(), tmp_path))


class Maker:
    """Makes nodes on a fake engine, remembering the order; fails the targets it is told to."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.engine = FakeEngine()
        self.order: list[str] = []
        self.fail = fail or {}
        self.threads: set[str] = set()
        self.bringup: BringUp | None = None

    def __call__(self, target: Target) -> Node:
        self.order.append(target.key)
        self.threads.add(threading.current_thread().name)
        if target.key in self.fail:
            raise self.fail[target.key]
        node = Node(self.engine, target.platform, session_id="0" * 16, image="img", short_name=target.node)
        assert self.bringup is not None
        self.bringup.register(target, node)
        return node


def _bringup(layout: NodeLayout, maker: Maker, *, size: int = 1, eager: bool = False, **kw: Any) -> BringUp:
    bringup = BringUp(layout, maker, size=size, eager=eager, name_of=lambda t: f"node-{t.key}", **kw)
    maker.bringup = bringup
    return bringup


def test_serial_is_a_pool_of_one_making_only_what_is_asked(tmp_path: Path) -> None:
    maker = Maker()
    bringup = _bringup(_layout(tmp_path, NODES), maker)
    bringup.planned = [Target(D12, "db"), Target(D12, "web"), Target(D13, "db")]
    node = bringup.node_for(Target(D12, "web"))
    assert node.short_name == "web"
    assert maker.order == ["debian-12/db", "debian-12/web"]  # its dependency first, nothing else
    assert maker.threads == {"infranode-make_0"}
    assert bringup.node_for(Target(D12, "web")) is node  # made once
    assert [n.short_name for n in bringup.made] == ["db", "web"]
    bringup.wait_for_all()


def test_eager_starts_every_planned_node(tmp_path: Path) -> None:
    maker = Maker()
    layout = _layout(tmp_path, NODES)
    bringup = _bringup(layout, maker, size=2, eager=True)
    bringup.planned = layout.plan([Target(D12, "web"), Target(D13, "cache")])
    bringup.node_for(Target(D12, "web"))
    bringup.wait_for_all()
    assert sorted(maker.order) == ["debian-12/db", "debian-12/web", "debian-13/cache"]
    assert maker.order.index("debian-12/db") < maker.order.index("debian-12/web")


def test_a_failed_node_fails_every_later_request_with_the_same_error(tmp_path: Path) -> None:
    error = NodeError("boot failed")
    failed: list[str] = []
    maker = Maker({"debian-12/": error})
    bringup = _bringup(_layout(tmp_path), maker, on_failure=lambda t: failed.append(t.key))
    for _ in range(2):
        with pytest.raises(NodeError) as excinfo:
            bringup.node_for(Target(D12))
        assert excinfo.value is error
    assert maker.order == ["debian-12/"]  # not tried again
    assert failed == ["debian-12/"]  # told once, when it failed
    assert bringup.failures == {"debian-12/": error}


def test_a_failed_dependency_fails_its_dependents_naming_it(tmp_path: Path) -> None:
    failed: list[str] = []
    maker = Maker({"debian-12/db": NodeError("db converge failed")})
    bringup = _bringup(_layout(tmp_path, NODES), maker, on_failure=lambda t: failed.append(t.key))
    with pytest.raises(NodeError, match="node web was not made: it depends on node db, which failed") as exc:
        bringup.node_for(Target(D12, "web"))
    assert "db converge failed" in exc.value.detail
    assert maker.order == ["debian-12/db"]
    assert set(bringup.failures) == {"debian-12/db", "debian-12/web"}
    assert "debian-12/db" in failed
    with pytest.raises(NodeError, match="db converge failed"):
        bringup.node_for(Target(D12, "db"))


def test_a_bug_is_raised_once_then_reported_as_a_node_error(tmp_path: Path) -> None:
    maker = Maker({"debian-12/": ZeroDivisionError("oops")})
    bringup = _bringup(_layout(tmp_path), maker)
    with pytest.raises(ZeroDivisionError):
        bringup.node_for(Target(D12))
    with pytest.raises(InfranodeError, match=r"making node node-debian-12/ failed: ZeroDivisionError"):
        bringup.node_for(Target(D12))


def test_release_leaves_kept_and_busy_nodes(tmp_path: Path) -> None:
    maker = Maker()
    bringup = _bringup(_layout(tmp_path, NODES), maker)
    for name in ("db", "web", "cache"):
        bringup.node_for(Target(D12, name))
    bringup.node_for(Target(D13, "db"))
    doomed = bringup.release("debian-12", keeps=lambda node: node.short_name == "cache")
    assert sorted(n.short_name for n in doomed) == ["db", "web"]
    assert sorted(bringup.nodes) == ["debian-12/cache", "debian-13/db"]
    bringup.wait_for_all()
