"""Claims on kept nodes: a session takes a kept node over (``--infra-reuse``), and a cleanup
removes one, only while it holds the node's claim.

A claim is a marker container, never started, named after the kept node's id
(:func:`marker_name`) and labelled with the claiming session. Creating a container under a
name is the one atomic test-and-set the daemon offers: its name registry reserves a name under
a lock, so of any number of creates of one name exactly one succeeds and the others get 409
Conflict. A rename is not: the daemon renames the container it resolved, whatever it is called
by then, so two sessions renaming one container (by id, or even by its old name) usually both
succeed, one after the other. Labels cannot be changed on a container at all.

The marker carries the claimer's session labels, so whatever removes that session's containers
(its teardown, its watchdog after a crash, the sweep of expired sessions) also releases the
claim; nothing else removes a marker whose session is alive. Pure, apart from the engine calls
of :func:`claim`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pytest_infranode import labels
from pytest_infranode.engine.api import CleanupEngine
from pytest_infranode.engine.api import ContainerInfo

PREFIX = "infranode-claim-"


def marker_name(container_id: str) -> str:
    """The name of the claim on the container ``container_id``: one per kept node."""
    return PREFIX + container_id[:32]


def is_marker(found: ContainerInfo) -> bool:
    """Whether a labelled container is a claim, not a node. Pure."""
    return labels.CLAIM in found.labels


def marker_labels(container_id: str, session_id: str, owner: str) -> dict[str, str]:
    """The labels of the claim of ``session_id`` (run by ``owner``) on ``container_id``. Pure."""
    return {
        labels.SESSION: session_id,
        labels.PID: owner,
        labels.CLAIM: container_id,
        labels.CREATED: str(int(time.time())),
    }


def claimed_by(found: Iterable[ContainerInfo]) -> dict[str, str]:
    """Container id of each claimed node → the session holding the claim. Pure."""
    return {c.labels[labels.CLAIM]: c.labels.get(labels.SESSION, "") for c in found if is_marker(c)}


def claim(engine: CleanupEngine, container_id: str, *, session_id: str, owner: str) -> str:
    """Claim the container ``container_id`` for ``session_id``: the marker's id if this call made
    the claim, "" if another session holds it (or the container is gone)."""
    return engine.create_claim(
        container_id, marker_name(container_id), marker_labels(container_id, session_id, owner)
    )
