"""The conformance table: one row per package, one column per (platform, cgroup version), each
cell whether the package's units were active and answering and, if not, why. Pure: frozen
results in, markdown and terminal text out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    ACTIVE = "active"  # passed
    EXPECTED = "expected"  # failed, as declared (strict xfail)
    FAILED = "failed"  # failed, not declared: a regression or a new cause
    UNEXPECTED_PASS = "unexpected-pass"  # declared impossible, yet it works (strict xfail passed)


@dataclass(frozen=True)
class Result:
    package: str
    platform: str
    cgroup: int
    outcome: Outcome
    cause: str = ""  # the declared cause (EXPECTED, UNEXPECTED_PASS) or what was seen (FAILED)
    seen: str = ""  # what the check saw, for the terminal (the evidence of a declared cause)

    @property
    def column(self) -> str:
        return f"{self.platform} (cgroup v{self.cgroup})"


def cell(result: Result) -> str:
    cause = " ".join(result.cause.split()).replace("|", "\\|")
    if result.outcome is Outcome.ACTIVE:
        return "active"
    if result.outcome is Outcome.EXPECTED:
        return f"no: {cause}"
    if result.outcome is Outcome.UNEXPECTED_PASS:
        return f"**active, but declared impossible**: {cause}"
    return f"**no, not declared**: {cause}"


def _grid(results: Iterable[Result]) -> tuple[list[str], list[str], dict[tuple[str, str], Result]]:
    packages: dict[str, None] = {}
    columns: dict[str, None] = {}
    cells: dict[tuple[str, str], Result] = {}
    for result in results:
        packages.setdefault(result.package)
        columns.setdefault(result.column)
        cells[(result.package, result.column)] = result
    return list(packages), sorted(columns), cells


def markdown(results: Iterable[Result]) -> str:
    """The table as markdown; a package not run in a column shows `-`."""
    packages, columns, cells = _grid(results)
    if not packages:
        return "No conformance results.\n"
    lines = [
        "| package | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for package in packages:
        row = [cell(cells[(package, c)]) if (package, c) in cells else "-" for c in columns]
        lines.append(f"| {package} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append(totals(cells.values()))
    return "\n".join(lines) + "\n"


def totals(results: Iterable[Result]) -> str:
    counts = dict.fromkeys(Outcome, 0)
    for result in results:
        counts[result.outcome] += 1
    done = sum(counts.values())
    return (
        f"{counts[Outcome.ACTIVE]} of {done} active; {counts[Outcome.EXPECTED]} declared impossible; "
        f"{counts[Outcome.FAILED]} failed, not declared; "
        f"{counts[Outcome.UNEXPECTED_PASS]} declared impossible but active."
    )


def terminal(results: Iterable[Result]) -> list[str]:
    """Lines for the terminal summary: per column, what is not active, then the totals."""
    results = list(results)
    _, columns, _ = _grid(results)
    lines: list[str] = []
    for column in columns:
        mine = [r for r in results if r.column == column]
        active = sum(r.outcome is Outcome.ACTIVE for r in mine)
        lines.append(f"{column}: {active} of {len(mine)} active")
        for result in mine:
            if result.outcome is not Outcome.ACTIVE:
                lines.append(f"  {result.package}: {cell(result)}")
            if result.outcome is Outcome.EXPECTED and result.seen:
                lines.append(f"    seen: {' '.join(result.seen.split())}")
    lines.append(totals(results))
    return lines
