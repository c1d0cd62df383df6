"""`infranode import molecule` on a fixture role, then the printed pytest command on the
infranode.yaml it wrote: the role's Molecule scenario converged for real on debian-12, with the
idempotence check skipping `molecule-idempotence-notest`, and the scenario's testinfra specs
passing unchanged."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_infranode.cli import main
from tests.integration.conftest import InfraRun
from tests.integration.conftest import import_molecule

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"

Run = Callable[..., InfraRun]


def test_an_imported_systemd_scenario_runs_its_specs_unchanged(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    role = pytester.path / "hello_service"
    shutil.copytree(FIXTURES / "hello_service", role)
    _, command = import_molecule(pytester, capsys, role)
    assert command == [
        "pytest",
        "--rootdir=hello_service/molecule/default",
        "hello_service/molecule/default/tests",
        "-v",
    ]
    run = infra_run(*command[1:], subprocess=True)
    run.result.assert_outcomes(passed=4)
    out = run.result.stdout.str()
    # the first converge runs the task tagged molecule-idempotence-notest; the idempotence
    # check's converge skips it, so the role counts as idempotent, as under Molecule
    # (counted in the node's own output lines: a slow task also gets a progress line naming it)
    task_lines = [
        line
        for line in out.splitlines()
        if line.startswith("  instance | TASK [hello_service : Record when the role last ran]")
    ]
    assert len(task_lines) == 1, out
    run.result.stdout.fnmatch_lines(
        [
            "*converging * again to check idempotence*",
            "  instance | $ *ansible-playbook * --diff --skip-tags molecule-notest,notest "
            "--skip-tags molecule-idempotence-notest *converge.yml",
            "  instance | instance * changed=0 *",
            "*test_the_hostname_is_the_inventory_name[[]debian-12[]] PASSED*",
            "debian-12 *-debian-12-instance * ok *removed",
        ]
    )


def _import_lifecycle(pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lifecycle scenario (prepare, converge, idempotence, side effect, verify with the
    Ansible verifier) imported, with the role linked under its Galaxy name as the import says."""
    role = pytester.path / "hello_service"
    shutil.copytree(FIXTURES / "hello_service", role)
    roles = role / "molecule" / "lifecycle" / "roles"
    roles.mkdir()
    (roles / "infranode_tests.hello_service").symlink_to("../../..")
    here = Path.cwd()
    os.chdir(role)
    try:
        assert main(["import", "molecule", "lifecycle"]) == 0
    finally:
        os.chdir(here)
    printed = capsys.readouterr().out.splitlines()
    command = shlex.split(printed[printed.index("run the specs with:") + 1])
    assert command == ["pytest", "--rootdir=molecule/lifecycle", "molecule/lifecycle/verify.yml"]
    return ["--rootdir=hello_service/molecule/lifecycle", "hello_service/molecule/lifecycle/verify.yml"]


def test_a_scenario_with_the_ansible_verifier_runs_its_whole_sequence(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _import_lifecycle(pytester, capsys)
    run = infra_run(*args, "-v", subprocess=True)
    run.result.assert_outcomes(passed=1)
    # verify.yml passes only if side_effect.yml stopped the service after the idempotence
    # check's converge (which would have started it again)
    run.result.stdout.fnmatch_lines(
        [
            "*converging * again to check idempotence*",
            "*running the side effect *side_effect.yml on *-lifecycle-instance*",
            "*running *verify.yml on *-lifecycle-instance (log: *.verify.log)*",
            "*verify.yml::verify[[]debian-12[]] PASSED*",
        ]
    )


def test_a_failing_verify_playbook_is_a_failed_test_in_the_tools_words(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _import_lifecycle(pytester, capsys)
    verify = pytester.path / "hello_service" / "molecule" / "lifecycle" / "verify.yml"
    verify.write_text(verify.read_text().replace('!= "inactive"', '!= "active"'))
    run = infra_run(*args, subprocess=True)  # also: no container left behind
    run.result.assert_outcomes(failed=1)
    out = run.result.stdout.str()
    run.result.stdout.fnmatch_lines(
        [
            "*verify.yml failed on platform debian-12: the ansible provisioner exited with status 2: "
            "task 'The service was stopped by the side effect' failed on lifecycle-instance*",
            "full log: *.verify.log",
            "--- last lines of its output ---",
            "*The service was stopped by the side effect*",
            "FAILED *verify.yml::verify[[]debian-12[]]*",
        ]
    )
    assert "Traceback" not in out
