"""Removing nodes: the ``before_remove`` hook, then the container; several side by side in the
background, and every failure kept as a line for the report (removal keeps going)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from typing import final

import pluggy

from pytest_infranode import reaper
from pytest_infranode.engine import Engine
from pytest_infranode.node import Node


@final
class Remover:
    """Removes nodes, up to ``size`` at once; :attr:`problems` collects what went wrong."""

    def __init__(self, hook: pluggy.HookRelay, *, size: int) -> None:
        self.hook = hook
        self.size = size
        self.problems: list[str] = []
        self._pool: ThreadPoolExecutor | None = None
        self._removals: list[Future[str | None]] = []
        self._lock = threading.Lock()

    def remove(self, node: Node) -> None:
        """Remove ``node`` now; a failure of the ``before_remove`` hook is recorded, not raised."""
        try:
            self.hook.pytest_infranode_before_remove(node=node)
        except Exception as exc:  # a plugin's failure must not leave the node behind
            self.report(f"{node.name}: pytest_infranode_before_remove failed: {exc}")
        node.remove()

    def _remove_safely(self, node: Node) -> str | None:
        try:
            self.remove(node)
        except Exception as exc:
            return f"{node.name}: {exc}"
        return None

    def report(self, line: str) -> None:
        """Keep ``line`` for the summary's teardown problems."""
        with self._lock:
            self.problems.append(line)

    def _one_by_one(self, nodes: Iterable[Node]) -> None:
        for problem in map(self._remove_safely, nodes):
            if problem is not None:
                self.report(problem)

    def start(self, nodes: list[Node]) -> None:
        """Remove ``nodes`` in the background, side by side; with a size of 1, one after another
        before returning."""
        if self.size <= 1:
            self._one_by_one(nodes)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="infranode-remove")
        self._removals += [self._pool.submit(self._remove_safely, node) for node in nodes]

    def remove_all(self, nodes: list[Node]) -> None:
        """Remove ``nodes`` side by side with any removal still under way, and wait for all.

        Removing a node is mostly the daemon's work (kill, unmount, delete its layer), so several
        at once end sooner than one after another.
        """
        if len(nodes) <= 1 and not self._removals:  # the usual single node: no thread for it
            self._one_by_one(nodes)
        else:
            self.start(nodes)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for future in self._removals:
            problem = future.result()
            if problem is not None:
                self.report(problem)
        self._removals = []


def sweep_session(
    engine: Engine,
    session_id: str,
    keep_ids: set[str],
    networks: dict[str, str],
    report: Callable[[str], None],
) -> list[str]:
    """Remove whatever else carries the session's label (a node made by a crashed thread, its
    networks), sparing kept nodes; ``networks`` loses those removed. The containers removed."""
    removed: list[str] = []
    try:
        removed = reaper.sweep(engine, session_id=session_id, keep=frozenset(keep_ids))
    except Exception as exc:
        report(f"sweep of session {session_id}: {exc}")
    for platform_name, network_id in list(networks.items()):
        try:  # the sweep removed it already, unless a kept node still uses it
            if engine.remove_network(network_id):
                del networks[platform_name]
        except Exception as exc:
            report(f"network of {platform_name}: {exc}")
    return removed
