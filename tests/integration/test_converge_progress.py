"""A converge longer than the progress interval shows node, step and elapsed seconds live."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]


def test_a_long_converge_shows_progress_without_verbose(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - echo installing-the-slow-thing
            - sleep 17
        """,
    )
    pytester.makepyfile("def test_x(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(passed=1)
    # pytester's output is no terminal: one line per 15 s, so exactly one for a ~17 s converge.
    lines = [line for line in run.result.outlines if ": converging (" in line]
    assert len(lines) == 1, lines
    # The line is due at 15 s; a loaded machine may print it a little later.
    assert re.match(r"infranode: debian-12: converging \(1[5-9] s\): ", lines[0]), lines
    assert "installing-the-slow-thing" in lines[0] or "sleep 17" in lines[0]
