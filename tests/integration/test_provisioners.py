"""Built-in and third-party provisioners converging real debian-12 nodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.provisioners import _common
from tests.integration.conftest import OWNER
from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]


def test_ansible_example_converges_through_the_docker_api(pytester: pytest.Pytester, infra_run: Run) -> None:
    copy_example(pytester, "ansible")
    run = infra_run("-v")
    run.result.assert_outcomes(passed=10)
    run.result.stdout.fnmatch_lines(
        ["*provisioner ansible*", "*test_header_uses_host_vars[[]debian-12[]] PASSED*"]
    )


def test_missing_runner_tool_stops_the_session_before_any_node(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_example(pytester, "ansible")
    monkeypatch.setattr(_common, "find_tool", lambda tool: None)
    run = infra_run()
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(
        [
            "*the ansible provisioner needs `ansible-playbook` on the runner*",
            "*where: runner: not in *",
            "*fix: *pip install 'pytest-infranode?ansible?'*",
        ]
    )
    assert engine.list_containers([f"{labels.PID}={OWNER}"]) == []
