"""A tool installed in the node from the second of its alternative packages: the package index
the first try fetched serves the second (one ``apt-get update``, not two)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]


def test_puppet_on_debian_12_installs_from_the_index_its_first_try_fetched(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    # Debian 12 has no puppet-agent (the first alternative), only puppet.
    copy_example(pytester, "puppet")
    run = infra_run("-v", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=9)
    out = run.result.stdout
    out.fnmatch_lines(
        [
            "*$ /bin/sh -c export DEBIAN_FRONTEND=noninteractive; "
            "apt-get update -q && apt-get install -y -q puppet-agent",
            "*E: Unable to locate package puppet-agent",
            "*$ /bin/sh -c { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q puppet; } || *",
            "*Setting up puppet *",
            "*Notice: /Stage[[]main[]]/Web/Package[[]nginx[]]/ensure: created",
        ]
    )
    # The second try found puppet in the index already there: it fetched none again (each
    # `apt-get update` says Hit: or Get: for bookworm's InRelease).
    assert out.str().count("E: Unable to locate package") == 1
    assert out.str().count(" bookworm InRelease") == 1, out.str()
