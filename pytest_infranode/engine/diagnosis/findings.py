"""What the doctor says: a :class:`Finding` per check, the :class:`Report` of a run, its text and
JSON renderings.

A finding is also the error a pytest session raises when it cannot use the daemon
(:meth:`Finding.to_error`): the session and ``infranode doctor`` print the same diagnosis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

from pytest_infranode.engine.diagnosis.ci import CI_TITLES
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import DaemonPermissionDenied
from pytest_infranode.errors import DaemonTLSError
from pytest_infranode.errors import DaemonUnreachable

Status = Literal["ok", "info", "warn", "fail"]
Kind = Literal["unreachable", "permission", "tls", "other"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the doctor's report: a check, its status, the cause, evidence and the fix."""

    check: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""
    kind: Kind = "unreachable"

    def to_error(self, where: str) -> DaemonError:
        """The same diagnosis as an exception (what / where / fix, evidence as detail)."""
        cls: type[DaemonError] = {
            "unreachable": DaemonUnreachable,
            "permission": DaemonPermissionDenied,
            "tls": DaemonTLSError,
            "other": DaemonError,
        }[self.kind]
        detail = "\n".join(f"  evidence: {line}" for line in self.evidence)
        return cls(self.summary, where=where, fix=self.fix, detail=detail)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass(slots=True)
class Report:
    """The whole doctor run, rendered by ``infranode doctor`` as text or JSON."""

    endpoint: str
    source: str
    ci: str
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "endpoint": self.endpoint,
            "source": self.source,
            "ci": self.ci or None,
            "seconds": round(self.seconds, 2),
            "checks": [f.as_dict() for f in self.findings],
        }


def render_text(report: Report) -> str:
    """One screen: a line per check, then evidence and fix under each problem."""
    marks = {"ok": "OK  ", "info": "INFO", "warn": "WARN", "fail": "FAIL"}
    lines = [
        f"infranode doctor: {report.endpoint} [{report.source}]"
        + (f" on {CI_TITLES[report.ci]}" if report.ci else "")
    ]
    for f in report.findings:
        lines.append(f"{marks[f.status]}  {f.check:<11} {f.summary}")
        if f.status != "ok":
            lines.extend(f"             evidence: {e}" for e in f.evidence)
            if f.fix:
                fix = f.fix.replace("\n         ", "\n" + " " * 23)
                lines.append(f"             fix:      {fix}")
    verdict = "ready" if report.ok else "NOT ready"
    lines.append(f"verdict: {verdict} ({report.seconds:.1f} s)")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def error_chain(exc: BaseException) -> str:
    """The exception's type and its root cause, on one line (the full text of the root)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8 and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    root = chain[-1]
    text = f"{type(root).__name__}: {root}"
    return text if root is exc else f"{type(exc).__name__} caused by {text}"
