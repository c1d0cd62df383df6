"""The keep policy (``--infra-keep``): which nodes stay after the session, and when a failed
node goes at once. Its decisions are pure (:func:`keeps`); :class:`KeepPolicy` holds the
platforms that had a failure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import final

from pytest_infranode import claims
from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.errors import InfranodeError
from pytest_infranode.node import Node
from pytest_infranode.options import KeepPolicy as Policy


def keeps(policy: Policy, *, platform_failed: bool) -> bool:
    """Whether a node stays after the session. Pure."""
    return policy == "always" or (policy == "failure" and platform_failed)


def removes_failed_node_at_once(policy: Policy) -> bool:
    """A node whose converge failed is removed right away unless some policy may keep it. Pure."""
    return policy == "never"


@final
class KeepPolicy:
    """The policy of this session and the platforms that had a failed test or node."""

    def __init__(self, policy: Policy, *, tell_others: Callable[[str], None] = lambda _name: None) -> None:
        self.policy = policy
        self.failed_platforms: set[str] = set()
        self._tell_others = tell_others
        """Under pytest-xdist, a worker leaves a flag for its controller (which decides)."""
        self._lock = threading.Lock()

    def record_failure(self, platform_name: str, *, by_test: bool = False) -> None:
        """A test of the platform failed (``by_test``), or one of its nodes could not be made."""
        with self._lock:
            self.failed_platforms.add(platform_name)
        if by_test:
            self._tell_others(platform_name)

    def should_keep(self, node: Node) -> bool:
        return keeps(self.policy, platform_failed=node.platform.name in self.failed_platforms)

    def platform_kept(self, platform_name: str, failed: set[str]) -> bool:
        """For the controller of xdist workers: whether a node of ``platform_name`` stays."""
        return keeps(self.policy, platform_failed=platform_name in failed)

    def at_end(
        self, nodes: Iterable[Node], report: Callable[[str], None]
    ) -> tuple[list[Kept], set[str], list[Node]]:
        """The session ends: the live nodes the policy keeps stay running, renamed so that sweeps
        spare them (a failed rename is reported). Returns them, their container ids, and the
        nodes to remove."""
        kept: list[Kept] = []
        ids: set[str] = set()
        doomed: list[Node] = []
        for node in nodes:
            if not (self.should_keep(node) and node.container_id):
                doomed.append(node)
                continue
            ids.add(node.container_id)
            problem = node.keep(reaper.KEPT_SUFFIX)
            if problem is not None:
                report(problem)
            kept.append(Kept(node.name, node.platform.name, node.labels.get(labels.SESSION, "")))
        return kept, ids, doomed

    def after_failure(self, node: Node, remove: Callable[[Node], None]) -> None:
        """A node failed its converge, idempotence check or side effect: remove it now unless the
        policy may keep it for a look."""
        if removes_failed_node_at_once(self.policy):
            remove(node)


@final
@dataclass(frozen=True, slots=True)
class Kept:
    """A node left running after the session, for the summary's ``infranode login`` line."""

    name: str
    platform: str
    session: str = ""
    """The session whose label it carries (an earlier one's, for a reused node); "": this one."""


def keep_workers_nodes(
    engine: EngineProtocol,
    session_id: str,
    policy: KeepPolicy,
    failed: set[str],
    report: Callable[[str], None],
) -> tuple[list[Kept], set[str]]:
    """The controller of xdist workers keeps the nodes the policy names (renamed so that the
    session's sweep spares them); the sweep removes the rest. Returns them and their ids."""
    if policy.policy == "never":
        return [], set()
    try:
        containers = engine.list_containers([f"{labels.SESSION}={session_id}"])
    except InfranodeError as exc:
        report(f"listing the nodes of session {session_id}: {exc.what}")
        return [], set()
    kept: list[Kept] = []
    ids: set[str] = set()
    for c in containers:
        if claims.is_marker(c):  # a claim on a reused node, not a node: the sweep removes it
            continue
        platform = c.labels.get(labels.PLATFORM, "")
        if policy.platform_kept(platform, failed):
            name = c.name
            try:
                engine.rename_container(c.id, name + reaper.KEPT_SUFFIX)
            except InfranodeError as exc:
                report(f"{name}: could not mark as kept: {exc.what}")
                continue
            kept.append(Kept(name + reaper.KEPT_SUFFIX, platform))
            ids.add(c.id)
    return kept, ids
