"""Bring-up: when nodes are made, how many at once, in which order, and what a failure means.

There is one path for every node. Nodes are made in a pool of threads, each after the nodes it
depends on: ``--infra-parallel=1`` is a pool of one, and a pytest-xdist worker's pool of one
wraps each node in the shared file lock (see ``sharing.py``). A node that could not be made
fails every test that asks for it with the same error, recorded in one place
(:meth:`BringUp._fail`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from typing import final

from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import Interrupted
from pytest_infranode.errors import NodeError
from pytest_infranode.interrupt import Cancel
from pytest_infranode.node import Node
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import Target

MakeNode = Callable[[Target], Node]
"""Makes (or attaches to) the converged node of a target; raises InfranodeError."""
MakeGroup = Callable[[tuple[Target, ...]], dict[str, Node | InfranodeError]]
"""Makes the nodes of targets converged in one run: each one's node, or its error, by key."""


@final
class BringUp:
    """The scheduler of node bring-up, and the books of what it made.

    :param make: makes one node; it calls :meth:`register` once the node has a name and will
        get a container, so that teardown finds it even if its converge fails.
    :param size: how many nodes are made at once.
    :param eager: on the first request, start every node of :attr:`planned` (side by side with
        the tests); else only the requested node and those it depends on.
    :param on_failure: told the target of every node that could not be made.
    :param cancel: the session's interrupt, bound in every job (see ``interrupt.py``).
    """

    def __init__(
        self,
        layout: NodeLayout,
        make: MakeNode,
        *,
        size: int,
        eager: bool,
        name_of: Callable[[Target], str],
        on_failure: Callable[[Target], None] = lambda _target: None,
        group_of: Callable[[Target], tuple[Target, ...]] = lambda _target: (),
        make_group: MakeGroup | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        self.layout = layout
        self.cancel = cancel if cancel is not None else Cancel()
        self._make = make
        self.size = max(1, size)
        self.eager = eager
        self._name_of = name_of
        self._on_failure = on_failure
        self._group_of = group_of
        """The targets converged in one run with a target (itself among them), or ()."""
        self._make_group = make_group
        self.planned: list[Target] = []
        """Nodes the collected tests will need, dependencies first."""
        self.nodes: dict[str, Node] = {}
        """Live nodes by :attr:`Target.key` (``debian-12/web``)."""
        self.made: list[Node] = []
        """Every node made in this session, for the summary."""
        self.failures: dict[str, InfranodeError] = {}
        self._futures: dict[str, Future[Node]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.RLock()

    def register(self, target: Target, node: Node, made: bool = True) -> None:
        """A node of ``target`` exists; ``made`` by this process (not attached to another's)."""
        with self._lock:
            self.nodes[target.key] = node
            if made:
                self.made.append(node)

    def node_for(self, target: Target) -> Node:
        """The converged node of ``target``, made on first use (after its dependencies).

        :raises InfranodeError: the same error again for every request of a node that failed.
        """
        with self._lock:
            if target.key in self.failures:
                raise self.failures[target.key]
            self._submit([*self.planned, target] if self.eager else [target])
            future = self._futures[target.key]
        try:
            return future.result()
        except Exception as exc:  # a bug or a plugin's too: later tests must not get a half-made node
            self._fail(target, exc)
            raise

    def release(self, platform_name: str, keeps: Callable[[Node], bool]) -> list[Node]:
        """Forget the live nodes of ``platform_name`` (no later test needs them) and return them
        for removal; nodes that ``keeps`` keeps, and nodes still being made, stay."""
        with self._lock:
            doomed = [
                node
                for key, node in self.nodes.items()
                if node.platform.name == platform_name
                and node.state != "removed"
                and not keeps(node)
                and not self.busy(key)
            ]
            self.nodes = {k: n for k, n in self.nodes.items() if n not in doomed}
        return doomed

    def busy(self, key: str) -> bool:
        """Whether the node of ``key`` is being made right now."""
        future = self._futures.get(key)
        return future is not None and not future.done()

    def wait_for_all(self) -> None:
        """Let nodes being made finish, and drop those not started (before teardown)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abandon(self, timeout: float) -> bool:
        """The session was interrupted: drop the jobs not started and wait at most ``timeout``
        seconds for those under way (told to stop by the interrupt). Whether they all ended."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            futures = list(self._futures.values())
        _done, running = wait(futures, timeout=timeout)
        return not running

    def _submit(self, targets: list[Target]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="infranode-make")
        for wanted in targets:
            for target in self.layout.with_dependencies(wanted):  # the pool's order is FIFO
                if target.key not in self._futures and target.key not in self.failures:
                    group = self._group_of(target) if self._make_group is not None else ()
                    if group:
                        self._submit_group(group)
                    else:
                        job = self.cancel.wrap(self._bring_up)
                        self._futures[target.key] = self._pool.submit(job, target)

    def _submit_group(self, group: tuple[Target, ...]) -> None:
        """One job for the nodes converged in one run, after what they depend on outside it;
        each member's future is settled by that job."""
        assert self._pool is not None
        keys = {t.key for t in group}
        self._submit([d for t in group for d in self.layout.with_dependencies(t) if d.key not in keys])
        futures: dict[str, Future[Node]] = {}
        for target in group:
            futures[target.key] = self._futures.setdefault(target.key, Future())
        self._pool.submit(self.cancel.wrap(self._bring_up_group), group, futures)

    def _bring_up_group(self, group: tuple[Target, ...], futures: dict[str, Future[Node]]) -> None:
        """The nodes of one run, in a pool thread, once what they depend on outside it is up."""
        assert self._make_group is not None
        keys = {t.key for t in group}
        try:
            for target in group:
                for dep in self.layout.configs[target.node].depends_on:
                    needed = Target(target.platform, dep)
                    if needed.key not in keys:
                        self._wait_for_dependency(target, needed)
            outcome = self._make_group(group)
        except Exception as exc:
            for future in futures.values():
                future.set_exception(exc)
            return
        for target in group:
            found = outcome.get(target.key)
            if isinstance(found, Node):
                futures[target.key].set_result(found)
            else:
                futures[target.key].set_exception(
                    found or NodeError(f"node {target.node} was not made", where=target.platform.name)
                )

    def _bring_up(self, target: Target) -> Node:
        """One node, in a pool thread, once the nodes it depends on (submitted before it) are up."""
        for dep in self.layout.configs[target.node].depends_on:
            self._wait_for_dependency(target, Target(target.platform, dep))
        return self._make(target)

    def _wait_for_dependency(self, target: Target, needed: Target) -> None:
        """Wait until the node ``target`` depends on is up; raise if it could not be made."""
        dep = needed.node
        try:
            self._futures[needed.key].result()
        except InfranodeError as err:
            self._fail(needed, err)
            raise NodeError(
                f"node {target.node} was not made: it depends on node {dep}, which failed",
                where=f"platform {target.platform.name}",
                fix=f"see the error of node {dep}",
                detail=str(err),
            ) from None
        except Exception as exc:
            self._fail(needed, exc)
            raise

    def _fail(self, target: Target, exc: Exception) -> None:
        """The one failure handler: remember the error for every later request of the node."""
        err = (
            exc
            if isinstance(exc, InfranodeError)
            else NodeError(
                f"making node {self._name_of(target)} failed: {exc!r}",
                where=f"platform {target.platform.name}",
                fix="see the first error of this node for the traceback",
            )
        )
        with self._lock:
            self.failures.setdefault(target.key, err)
        if not isinstance(exc, Interrupted):  # an interrupt is no failure for the keep policy
            self._on_failure(target)
