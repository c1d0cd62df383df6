"""No provisioner configured: a bare node of each platform, booted, not converged, tests run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

SPEC = """
def test_the_bare_platform(host):
    assert host.file("/etc/debian_version").exists
    assert not host.file("/tmp/infranode").exists  # nothing was copied in or run
"""
PLAIN_TESTINFRA = """
import pytest

@pytest.fixture
def converged(host):
    host.run("echo from-a-fixture > /etc/motd")  # the test's own converge
    return host

def test_a_fixture_converges_the_bare_node(converged):
    assert converged.file("/etc/motd").content_string == "from-a-fixture\\n"
"""


@pytest.mark.parametrize(
    "config",
    [None, "boot_timeout: 90\n", "provisioner: none\n"],
    ids=["no-configuration", "configuration-without-provisioner", "provisioner-none"],
)
def test_no_provisioner_gives_a_bare_node(
    pytester: pytest.Pytester, infra_run: Run, config: str | None
) -> None:
    if config is not None:
        pytester.makefile(".yaml", infranode=config)
    pytester.makepyfile(test_bare=SPEC, test_fixture=PLAIN_TESTINFRA)
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(passed=2)
    run.result.stdout.fnmatch_lines(
        [
            "*debian-12: infranode-*-debian-12 left bare: no provisioner configured*",
            "platform*node*image*cache*boot*converge*ready*result",
            "debian-12*infranode-*-debian-12*s*none*s*removed",
            "ready: from request to usable*",
        ]
    )
    assert "converging" not in run.result.stdout.str()
    # where no configuration was found is said only when there was none
    looked = f"(no infranode.yaml or infranode.yml in the rootdir {pytester.path}; --infra-config"
    assert (looked in run.result.stdout.str()) == (config is None)
