"""--infra-reuse: a later session takes over a kept node whose converge inputs are unchanged."""

from __future__ import annotations

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.reaper import KEPT_SUFFIX

CONVERGE = "echo converged >> /etc/converge-count\n"
SPEC = """
def test_count(host):
    print("COUNT", len(host.file("/etc/converge-count").content_string.splitlines()))
"""


def _kept(engine: Engine) -> dict[str, str]:
    found = engine.list_containers([labels.CONVERGE])
    return {c.id: c.name for c in found if c.name.endswith(KEPT_SUFFIX)}


def test_kept_node_is_reused_only_while_its_inputs_are_unchanged(
    pytester: pytest.Pytester, engine: Engine
) -> None:
    (pytester.path / "converge.sh").write_text(CONVERGE)
    pytester.makefile(".yaml", infranode="provisioner:\n  name: shell\n  script: converge.sh\n")
    pytester.makepyfile(SPEC)
    before = set(_kept(engine))
    made: set[str] = set()
    try:
        first = pytester.runpytest_subprocess("-s", "--infra-platform=debian-12", "--infra-keep=always")
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines(["COUNT 1"])
        made = set(_kept(engine)) - before
        assert len(made) == 1

        again = pytester.runpytest_subprocess(
            "-s", "--infra-platform=debian-12", "--infra-keep=always", "--infra-reuse"
        )
        again.assert_outcomes(passed=1)
        again.stdout.fnmatch_lines(["*reusing kept node infranode-*-debian-12-kept*", "COUNT 1"])
        assert set(_kept(engine)) - before == made  # still the one kept node, not a second

        (pytester.path / "converge.sh").write_text(CONVERGE + "echo changed\n")
        changed = pytester.runpytest_subprocess("-s", "--infra-platform=debian-12", "--infra-reuse")
        changed.assert_outcomes(passed=1)
        changed.stdout.fnmatch_lines(["*no kept node with unchanged converge inputs to reuse*", "COUNT 1"])

        (pytester.path / "converge.sh").write_text(CONVERGE)
        consumed = pytester.runpytest_subprocess("-s", "--infra-platform=debian-12", "--infra-reuse")
        consumed.assert_outcomes(passed=1)
        consumed.stdout.fnmatch_lines(["*reusing kept node*", "COUNT 1"])
        # Without --infra-keep the reused node is consumed: removed at the end of that session.
        assert set(_kept(engine)) - before == set()
        made = set()
    finally:
        for cid in made:
            engine.remove_container(cid)
