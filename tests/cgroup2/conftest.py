"""The cgroup v2 + AppArmor suite: run against the Docker daemon of the project's QEMU lab
(scripts/cgroup2-vm.sh), whose address `scripts/dev cgroup2` puts in INFRANODE_CG2_DOCKER_HOST.
Without it the suite fails: it never skips."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.errors import DaemonError

SESSION_RE = re.compile(r"session ([0-9a-f]{16})")


@pytest.fixture(scope="session")
def vm_url() -> str:
    url = os.environ.get("INFRANODE_CG2_DOCKER_HOST", "")
    if not url:
        pytest.fail(
            "the cgroup v2 suite needs the lab's daemon: run `bash scripts/dev cgroup2` "
            "(it builds and boots the VM and sets INFRANODE_CG2_DOCKER_HOST)",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def vm(vm_url: str) -> Iterator[Engine]:
    try:
        engine = Engine.connect(vm_url, wait=60)
    except DaemonError as err:
        pytest.fail(f"the lab's cgroup v2 daemon does not answer at {vm_url}:\n{err}", pytrace=False)
    yield engine
    engine.close()


@dataclass
class VmRun:
    result: pytest.RunResult
    session_id: str


@pytest.fixture
def vm_run(pytester: pytest.Pytester, vm: Engine, vm_url: str) -> Callable[..., VmRun]:
    """An inner pytest session against the lab's daemon; afterwards nothing of it is left there."""

    def run(*args: str) -> VmRun:
        result = pytester.runpytest_subprocess(
            f"--infra-docker-host={vm_url}", "--infra-boot-timeout=300", *args
        )
        match = SESSION_RE.search(result.stdout.str())
        assert match, result.stdout.str()
        left = vm.list_containers([f"{labels.SESSION}={match.group(1)}"])
        assert not left, f"session {match.group(1)} left containers on the v2 daemon: {left}"
        return VmRun(result, match.group(1))

    return run
