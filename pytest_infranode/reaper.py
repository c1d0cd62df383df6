"""Cleanup of labelled resources: the end-of-session sweep and ``infranode cleanup``."""

from __future__ import annotations

from typing import Protocol

from pytest_infranode import labels


class _Lister(Protocol):
    def list_containers(self, label_filters: list[str]) -> list[dict[str, object]]: ...

    def remove_container(self, container_id: str) -> None: ...


def sweep(engine: _Lister, *, session_id: str | None = None, keep: frozenset[str] = frozenset()) -> list[str]:
    """Remove the containers of one session (or, without ``session_id``, of every session).

    :param keep: container ids to leave alone (nodes kept for a look).
    :return: the names of the containers removed.
    """
    wanted = [f"{labels.SESSION}={session_id}"] if session_id else [labels.SESSION]
    removed = []
    for container in engine.list_containers(wanted):
        cid = str(container["Id"])
        if cid in keep:
            continue
        engine.remove_container(cid)
        names = container.get("Names")
        removed.append(str(names[0]).lstrip("/") if isinstance(names, list) and names else cid[:12])
    return removed
