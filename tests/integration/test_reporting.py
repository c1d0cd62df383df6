"""Reporting: the per-node summary, JUnit XML properties, log sections on failed tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

CONVERGE = """
provisioner:
  name: shell
  inline:
    - echo converge-step-says-hello
"""


def test_summary_junit_properties_and_failure_sections(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=CONVERGE)
    pytester.makepyfile(
        """
        def test_ok(host):
            assert host.run("true").rc == 0

        def test_fails(infra_node):
            assert infra_node.run("true").exit_status == 1
        """
    )
    run = infra_run("--infra-platform=debian-12", "--junitxml=out.xml", "-rA")
    run.result.assert_outcomes(passed=1, failed=1)
    out = run.result.stdout.str()
    node_name = f"infranode-{run.session_id}-debian-12"
    # The per-node table at the end.
    run.result.stdout.fnmatch_lines(
        [
            "*= infranode =*",
            "platform*node*image*cache*boot*converge*ready*result*",
            f"debian-12*{node_name}*hit*s*s*s*removed*",
            "ready: from request to usable, boot and converge included*",
        ]
    )
    # The failed test carries both tails, the passed one does not.
    run.result.stdout.fnmatch_lines(
        [f"*infranode converge log of {node_name} (tail)*", "*converge-step-says-hello*"]
    )
    run.result.stdout.fnmatch_lines([f"*infranode container log of {node_name} (tail*", "*systemd*"])
    assert out.count("infranode converge log of") == 1
    # JUnit XML: platform and node as properties of each test case.
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    props = {
        case.attrib["name"]: {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
        for case in cases
    }
    expected = {"infra_platform": "debian-12", "infra_node": node_name}
    assert props == {"test_ok[debian-12]": expected, "test_fails[debian-12]": expected}


def test_failed_converge_shows_sections_and_failed_row(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - echo broken-converge-output; exit 4
        """,
    )
    pytester.makepyfile("def test_a(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(["*infranode converge log of *(tail)*", "*broken-converge-output*"])
    run.result.stdout.fnmatch_lines(["debian-12*infranode-*-debian-12*failed, removed*"])


def test_summary_shows_the_idempotence_verdict(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner: {name: shell, inline: ["true"]}
        nodes:
          steady: {}
          drifting: {}
        """,
    )
    pytester.makeconftest(
        """
        from pytest_infranode import ConvergeResult, hookimpl

        @hookimpl
        def pytest_infranode_converge(node, provisioner, config, output):
            second = node.run("test -e /etc/once").exit_status == 0
            node.run("touch /etc/once")
            changed = not second or node.short_name == "drifting"
            return ConvergeResult(0, "", changed=changed, changes=("touched",) if changed else ())
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.infra_node("steady", "drifting")
        def test_x(host):
            pass
        """
    )
    run = infra_run("--infra-platform=debian-12", "--infra-idempotence")
    run.result.assert_outcomes(passed=1, errors=1)
    run.result.stdout.fnmatch_lines(["platform*node*image*cache*boot*converge*ready*idempotence*result*"])
    run.result.stdout.fnmatch_lines(["debian-12*-steady*ok*removed*"])
    run.result.stdout.fnmatch_lines(["debian-12*-drifting*not idempotent*failed, removed*"])
