"""The daemon restarting in the middle of a session: the tests it affects fail with a clear error,
the session ends normally, and nothing is left on the daemon afterwards.

Run against a second dockerd of our own (tests/integration/lab), so that restarting it does not
disturb anything else on the machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from tests.integration.lab import LabDaemon
from tests.integration.lab import start_dockerd

PORT = 2397

# A node that needs no network to prepare (the lab daemon has no NAT): plain debian:12 with a
# sleeping PID 1 instead of systemd.
CONFTEST = """
import dataclasses
from pytest_infranode import hookimpl
from pytest_infranode.platforms import BUILTIN_PLATFORMS

@hookimpl
def pytest_infranode_add_platforms():
    base = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")
    return [dataclasses.replace(
        base, name="plain-12", aliases=(), init="none", prepare=(), tmpfs={}, cap_add=(),
        command=("sleep", "infinity"), bootstrap=None,
    )]
"""

SPEC = """
import pathlib
import time

def test_1_before_the_restart(host):
    assert host.run("true").rc == 0
    pathlib.Path("ready").write_text("x")
    deadline = time.monotonic() + 120
    while not pathlib.Path("restarted").exists():
        assert time.monotonic() < deadline, "the outer test never restarted the daemon"
        time.sleep(0.2)

def test_2_after_the_restart(host):
    assert host.run("true").rc == 0
"""


@pytest.fixture
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDaemon]:
    daemon = start_dockerd("rst", tmp_path_factory.mktemp("restart-lab"), PORT, "172.30.97.1/24", [])
    try:
        saved = subprocess.run(["docker", "save", "debian:12"], capture_output=True, check=True).stdout
        subprocess.run(["docker", "-H", daemon.url, "load"], input=saved, capture_output=True, check=True)
        yield daemon
    finally:
        daemon.stop()


@pytest.mark.slow
def test_daemon_restart_mid_session(pytester: pytest.Pytester, lab: LabDaemon) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".yaml", infranode="provisioner:\n  name: shell\n  inline: ['true']\n")
    pytester.makepyfile(SPEC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         f"--infra-docker-host={lab.url}", "--infra-platform=plain-12"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    ready = pytester.path / "ready"
    deadline = time.monotonic() + 180
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the inner session did not reach its first test:\n" + proc.communicate()[0].decode())
        time.sleep(0.2)
    lab.restart()
    (pytester.path / "restarted").write_text("x")
    out = proc.communicate(timeout=300)[0].decode()

    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert "1 failed, 1 passed" in out, out
    assert "INTERNALERROR" not in out
    # The failure says what happened to the node, in our words.
    assert "ChannelError: the node stopped while a command ran in it (container state: exited)" in out, out

    engine = Engine.connect(lab.url, wait=10)
    try:
        assert engine.list_containers([labels.SESSION]) == []
    finally:
        engine.close()
