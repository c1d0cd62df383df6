"""The ``infranode`` section of the terminal summary: one row per node, kept nodes, problems. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import final

from pytest_infranode.node import Node
from pytest_infranode.node import container_name
from pytest_infranode.sharing import NodeRecord


@final
@dataclass(frozen=True, slots=True)
class NodeRow:
    """What the summary shows of one node, frozen when the table is drawn."""

    platform: str
    name: str
    image: str
    image_cached: bool | None
    timings: Mapping[str, float] = field(default_factory=dict)
    result: str = ""
    """``removed``, ``kept``, else the node's state."""
    failed: bool = False
    converge_cache: str = ""
    idempotence: str = "-"
    bare: bool = False
    """No provisioner configured: not converged (``none`` in the converge column)."""

    @classmethod
    def of(cls, node: Node, *, failed: bool, idempotence: str = "-") -> NodeRow:
        return cls(
            platform=node.platform.name,
            name=node.name,
            image=node.image,
            image_cached=node.image_cached,
            timings=dict(node.timings),
            result=node.outcome or node.state,
            failed=failed,
            converge_cache=node.converge_cache,
            idempotence=idempotence,
            bare=node.bare,
        )

    @classmethod
    def of_record(cls, record: NodeRecord, *, name: str, kept: bool) -> NodeRow:
        """A node an xdist worker made, as the controller sees it at the end."""
        return cls(
            platform=record.platform,
            name=name,
            image=record.image,
            image_cached=record.cached,
            timings=dict(record.timings),
            result="kept" if kept else "removed",
            failed=record.error is not None,
            converge_cache=record.converge_cache,
            idempotence=record.idempotence or "-",
        )


def rows_of_nodes(
    made: Iterable[Node], failures: Mapping[str, object], idempotence: Mapping[str, str]
) -> list[NodeRow]:
    """The rows of the nodes this process made; ``failures`` by ``platform/node`` key,
    ``idempotence`` verdicts by container name."""
    rows = []
    for node in made:
        name = container_name(node.session_id, node.platform.name, node.short_name)
        failed = f"{node.platform.name}/{node.short_name}" in failures
        rows.append(NodeRow.of(node, failed=failed, idempotence=idempotence.get(name, "-")))
    return rows


def rows_of_records(
    records: Iterable[NodeRecord], session_id: str, known: set[str], kept: set[str]
) -> list[NodeRow]:
    """The rows of the nodes xdist workers made, as their controller sees them at the end."""
    rows = []
    for record in records:
        if record.platform in known:
            name = container_name(session_id, record.platform, record.node)
            rows.append(NodeRow.of_record(record, name=name, kept=name in kept))
    return rows


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


LEGEND = "ready: from request to usable, boot and converge included (with image, side effect)"
"""The line under the table: what the time columns count."""


def node_table(rows: Iterable[NodeRow], *, idempotence: bool, converge_cache: bool) -> list[str]:
    """The table's lines, columns aligned, and the legend; none without a node."""
    table = [["platform", "node", "image", "cache", "boot", "converge", "ready", "result"]]
    if idempotence:
        table[0].insert(7, "idempotence")
    if converge_cache:
        table[0].insert(4, "converge cache")
    for row in rows:
        cells = [
            row.platform,
            row.name,
            row.image.removeprefix("sha256:")[:12],
            {True: "hit", False: "miss", None: "-"}[row.image_cached],
            seconds(row.timings.get("boot")),
            "none" if row.bare else seconds(row.timings.get("converge")),
            seconds(row.timings.get("ready")),
            f"failed, {row.result if row.result in ('kept', 'removed') else 'not removed'}"
            if row.failed
            else row.result,
        ]
        if idempotence:
            cells.insert(7, row.idempotence)
        if converge_cache:
            cells.insert(4, row.converge_cache or "-")
        table.append(cells)
    if len(table) == 1:
        return []
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return [*lines, LEGEND]


def kept_line(name: str, platform: str, session_id: str) -> str:
    """What to do with a kept node. The removal named is of ``session_id`` only (the session
    whose label the node carries: an earlier one for a reused node): a bare ``infranode
    cleanup`` would also remove every other session's kept and expired nodes."""
    return (
        f"kept {name} ({platform}): enter it with `infranode login {name}` "
        f"(or docker exec -it {name} bash); remove it, with its session's other kept nodes and "
        f"its network, with `infranode cleanup --session {session_id}`"
    )
