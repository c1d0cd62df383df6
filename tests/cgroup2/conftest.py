"""The cgroup v2 + AppArmor suite: run against the Docker daemons of the project's QEMU lab
(scripts/cgroup2-vm.sh), whose addresses `scripts/dev cgroup2` puts in INFRANODE_CG2_DOCKER_HOST
(the rootful dockerd) and INFRANODE_CG2_ROOTLESS_HOST (the rootless one). Without them the suite
fails: it never skips."""

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


def _lab_url(variable: str) -> str:
    url = os.environ.get(variable, "")
    if not url:
        pytest.fail(
            f"the cgroup v2 suite needs the lab's daemons: run `bash scripts/dev cgroup2` "
            f"(it builds and boots the VM and sets {variable})",
            pytrace=False,
        )
    return url


def _connect(url: str, what: str) -> Engine:
    try:
        return Engine.connect(url, wait=60)
    except DaemonError as err:
        pytest.fail(f"the lab's {what} does not answer at {url}:\n{err}", pytrace=False)


@pytest.fixture(scope="session")
def vm_url() -> str:
    return _lab_url("INFRANODE_CG2_DOCKER_HOST")


@pytest.fixture(scope="session")
def rootless_url() -> str:
    return _lab_url("INFRANODE_CG2_ROOTLESS_HOST")


@pytest.fixture(scope="session")
def vm(vm_url: str) -> Iterator[Engine]:
    engine = _connect(vm_url, "cgroup v2 daemon")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def rootless(rootless_url: str) -> Iterator[Engine]:
    engine = _connect(rootless_url, "rootless cgroup v2 daemon")
    yield engine
    engine.close()


@dataclass
class VmRun:
    result: pytest.RunResult
    session_id: str


def _runner(pytester: pytest.Pytester, engine: Engine, url: str) -> Callable[..., VmRun]:
    """An inner pytest session against one of the lab's daemons; afterwards nothing of it is
    left there."""

    def run(*args: str) -> VmRun:
        result = pytester.runpytest_subprocess(
            f"--infra-docker-host={url}", "--infra-boot-timeout=300", *args
        )
        match = SESSION_RE.search(result.stdout.str())
        assert match, result.stdout.str()
        left = engine.list_containers([f"{labels.SESSION}={match.group(1)}"])
        assert not left, f"session {match.group(1)} left containers on {url}: {left}"
        return VmRun(result, match.group(1))

    return run


@pytest.fixture
def vm_run(pytester: pytest.Pytester, vm: Engine, vm_url: str) -> Callable[..., VmRun]:
    return _runner(pytester, vm, vm_url)


@pytest.fixture
def rootless_run(pytester: pytest.Pytester, rootless: Engine, rootless_url: str) -> Callable[..., VmRun]:
    return _runner(pytester, rootless, rootless_url)
