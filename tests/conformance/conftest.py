"""The conformance table (table.py), filled from each test's report and written at the end of
the run: in the terminal summary and as markdown (`--conformance-table=PATH`, default
conformance-table.md in the folder pytest runs in)."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from .table import Outcome
from .table import Result
from .table import markdown
from .table import terminal

RESULTS = pytest.StashKey[list[Result]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conformance-table",
        default="conformance-table.md",
        help="where the conformance suite writes its table as markdown; default: conformance-table.md",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = []


def _outcome(report: pytest.TestReport) -> Outcome:
    if report.passed:
        return Outcome.ACTIVE
    if report.skipped and hasattr(report, "wasxfail"):
        return Outcome.EXPECTED
    if report.failed and "XPASS(strict)" in str(report.longrepr):
        return Outcome.UNEXPECTED_PASS
    return Outcome.FAILED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when != "call":
        return report
    props = dict(item.user_properties)
    cell = props.get("conformance")
    if isinstance(cell, tuple):
        label, platform, cgroup, declared = cell
        outcome = _outcome(report)
        seen = str(props.get("conformance-seen", ""))
        if outcome is Outcome.FAILED and not seen:
            seen = report.longreprtext.strip().splitlines()[-1] if report.longreprtext.strip() else "failed"
        cause = seen if outcome is Outcome.FAILED else declared
        item.config.stash[RESULTS].append(Result(label, platform, cgroup, outcome, cause, seen))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    results = config.stash[RESULTS]
    if not results:
        return
    terminalreporter.section("conformance")
    for line in terminal(results):
        terminalreporter.write_line(line)
    path = Path(config.getoption("--conformance-table"))
    path.write_text(markdown(results))
    terminalreporter.write_line(f"table written to {path}")
