"""A converge whose tool fails: each built-in provisioner errors the node's tests with its exit
status and the output tail (no Python traceback), and removes the node (``infra_run`` checks)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

TESTS = """
def test_one(host):
    assert True

def test_two(host):
    assert True
"""


def _assert_failed(run: InfraRun, provisioner: str, status: int, tail: list[str]) -> None:
    run.result.assert_outcomes(errors=2)
    run.result.stdout.fnmatch_lines(
        [
            f"*converge of infranode-*-debian-12 failed: the {provisioner} provisioner exited with "
            f"status {status}*",
            "*infranode converge log of *(tail)*",
            *tail,
        ]
    )
    run.result.stdout.fnmatch_lines(["debian-12*infranode-*-debian-12*failed, removed*"])
    # Our error, not a Python traceback of the plugin (a tool's own output may hold one: pyinfra's).
    run.result.stdout.fnmatch_lines(
        ["*_ ERROR at setup of test_one[[]debian-12[]] _*", "converge of infranode-*failed*"],
        consecutive=True,
    )
    out = run.result.stdout.str() + run.result.stderr.str()
    assert "pytest_infranode/" not in out
    assert "_pytest/" not in out


def test_failing_ansible_task(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode="provisioner: {name: ansible, playbook: site.yml}\n")
    pytester.makefile(
        ".yml",
        site="""
        - hosts: all
          gather_facts: false
          tasks:
            - name: A step that works
              ansible.builtin.command: "true"
            - name: The step that breaks
              ansible.builtin.command: sh -c 'echo ansible-step-broke >&2; exit 5'
        """,
    )
    pytester.makepyfile(TESTS)
    run = infra_run("--infra-platform=debian-12")
    # ansible-playbook exits 2 when a task failed on a host
    _assert_failed(run, "ansible", 2, ["*ansible-step-broke*", "*failed=1*"])
    # Ansible's own words for why, in the error's first line
    run.result.stdout.fnmatch_lines(
        [
            "converge of infranode-*-debian-12 failed: the ansible provisioner exited with status 2: "
            "task 'The step that breaks' failed on debian-12: non-zero return code (ansible-step-broke)"
        ]
    )


def test_failing_pyinfra_operation(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode="provisioner: {name: pyinfra, deploy: deploy.py}\n")
    pytester.makepyfile(
        deploy="""
        from pyinfra.operations import server

        server.shell(name="A step that works", commands=["true"])
        server.shell(name="The step that breaks", commands=["echo pyinfra-step-broke >&2; exit 5"])
        """
    )
    pytester.makepyfile(test_node=TESTS)
    run = infra_run("--infra-platform=debian-12")
    _assert_failed(run, "pyinfra", 1, ["*pyinfra-step-broke*"])


def test_failing_puppet_resource(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode="provisioner: {name: puppet, manifest: site.pp}\n")
    pytester.makefile(
        ".pp",
        site="""
        file { '/etc/works': content => "ok\\n" }
        exec { 'breaks':
          command  => "echo puppet-step-broke >&2; exit 5",
          provider => shell,
        }
        """,
    )
    pytester.makepyfile(TESTS)
    run = infra_run("--infra-platform=debian-12")
    # --detailed-exitcodes: 6 = changes made and failures, 4 = failures only
    _assert_failed(run, "puppet", 6, ["*Exec[[]breaks[]]*returns: *", "*puppet-step-broke*"])


def test_a_long_converge_output_is_whole_in_the_log_and_bounded_in_the_error(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    """300 000 lines then a failure: the log file holds every line, the error shows the last
    ones only (the tail kept in memory, not the whole output)."""
    pytester.makefile(
        ".yaml",
        infranode="provisioner:\n  name: shell\n  inline:\n"
        "    - 'seq 1 300000; echo the-last-words; exit 3'\n",
    )
    pytester.makepyfile(TESTS)
    run = infra_run("--infra-platform=debian-12")
    _assert_failed(run, "shell", 3, ["*the-last-words*"])
    out = run.result.stdout.str()
    log = Path(re.search(r"full log: (\S+\.converge\.log)", out).group(1))  # type: ignore[union-attr]
    lines = log.read_text().splitlines()
    assert lines[1:3] == ["1", "2"]  # after the `$ command` header
    assert lines[-2:] == ["300000", "the-last-words"]
    assert len(lines) == 300_000 + 2
    shown = out.split("--- last lines of the converge output ---", 1)[1].split("\n---", 1)[0]
    assert shown.strip().splitlines()[-2:] == ["300000", "the-last-words"]
    assert len(shown.strip().splitlines()) <= 25
    assert "\n150000\n" not in out  # nothing from the middle reaches the terminal
    assert len(out) < 100_000  # two errors and their report sections, not megabytes
