"""Parallel bring-up and teardown against a real daemon: nodes of two platforms converge (and
are removed) at the same time."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

CONFIG = textwrap.dedent(
    """
    provisioner:
      name: shell
      inline:
        - date +%s.%N > /var/log/converge-start
        - sleep 8  # long enough to overlap even when one node boots slowly
        - date +%s.%N > /var/log/converge-end
    """
)
SPEC = textwrap.dedent(
    """
    from pathlib import Path

    def test_times(host, infra_platform):
        start = host.file("/var/log/converge-start").content_string.strip()
        end = host.file("/var/log/converge-end").content_string.strip()
        (Path(__file__).parent / f"times-{infra_platform.name}.txt").write_text(f"{start} {end}")
    """
)


def _intervals(path: Path) -> list[tuple[float, float]]:
    found = []
    for name in ("debian-12", "debian-13"):
        start, end = (path / f"times-{name}.txt").read_text().split()
        found.append((float(start), float(end)))
    return found


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_two_platforms_converge_at_once(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=CONFIG)
    pytester.makepyfile(test_spec=SPEC)
    run = infra_run("--infra-platform=debian-12,debian-13", "--infra-parallel=2")
    run.result.assert_outcomes(passed=2)
    first, second = _intervals(pytester.path)
    assert _overlap(first, second), (first, second)


def test_parallel_one_makes_them_one_after_another(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=CONFIG)
    pytester.makepyfile(test_spec=SPEC)
    run = infra_run("--infra-platform=debian-12,debian-13", "--infra-parallel=1")
    run.result.assert_outcomes(passed=2)
    first, second = _intervals(pytester.path)
    assert not _overlap(first, second), (first, second)


def test_a_failing_node_fails_only_its_platform(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - grep -q bookworm /etc/os-release || exit 7
        """,
    )
    pytester.makepyfile(test_spec="def test_up(host):\n    assert host.run('true').rc == 0\n")
    run = infra_run("-v", "--infra-platform=debian-12,debian-13", "--infra-parallel=2")
    run.result.assert_outcomes(passed=1, errors=1)
    run.result.stdout.fnmatch_lines(["*test_up[[]debian-12[]] PASSED*", "*ERROR*test_up[[]debian-13[]]*"])


REMOVAL_HOOK = textwrap.dedent(
    """
    import time
    from pathlib import Path

    def pytest_infranode_before_remove(node):
        start = time.time()
        time.sleep(1.5)  # a plugin collecting artefacts: long enough to overlap with the other
        Path(__file__).parent.joinpath(f"removed-{node.platform.name}.txt").write_text(
            f"{start} {time.time()} {node.state}"
        )
    """
)


def _removals(path: Path) -> list[tuple[float, float]]:
    found = []
    for name in ("debian-12", "debian-13"):
        start, end, state = (path / f"removed-{name}.txt").read_text().split()
        assert state == "converged", state  # the hook ran before the node went
        found.append((float(start), float(end)))
    return found


@pytest.mark.parametrize(("parallel", "side_by_side"), [(2, True), (1, False)])
def test_teardown_removes_nodes_side_by_side(
    pytester: pytest.Pytester, infra_run: Run, parallel: int, side_by_side: bool
) -> None:
    pytester.makefile(".yaml", infranode='provisioner:\n  name: shell\n  inline: ["true"]\n')
    pytester.makeconftest(REMOVAL_HOOK)
    pytester.makepyfile(test_spec="def test_up(host):\n    assert host.run('true').rc == 0\n")
    run = infra_run("--infra-platform=debian-12,debian-13", f"--infra-parallel={parallel}")
    run.result.assert_outcomes(passed=2)
    for name in ("debian-12", "debian-13"):  # in the order they were made: either
        run.result.stdout.fnmatch_lines([f"{name} *removed"])
    first, second = _removals(pytester.path)
    assert _overlap(first, second) is side_by_side, (first, second)
