"""pytest-xdist: workers share the session's nodes; each is converged once, removed once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from tests.integration.conftest import InfraRun
from tests.integration.conftest import as_from_a_terminal

Run = Callable[..., InfraRun]

CONFTEST = """
import os
from pathlib import Path

from pytest_infranode import hookimpl

@hookimpl
def pytest_infranode_after_converge(node, result):
    with open(Path(__file__).parent / "converged.txt", "a") as f:
        f.write(f"{node.name} {os.getpid()}\\n")
"""

YAML = """
provisioner: {name: shell, inline: ["echo converged > /etc/marker"]}
nodes:
  web: {depends_on: [db]}
  db: {}
"""

TESTS = """
import pytest

@pytest.mark.parametrize("i", range(6))
def test_web(host, i):
    assert host.file("/etc/marker").content_string == "converged\\n"
    assert host.run("getent hosts db").rc == 0

@pytest.mark.infra_node("db")
@pytest.mark.parametrize("i", range(6))
def test_db(host, i):
    assert host.check_output("hostname") == "db"
"""


def test_two_workers_converge_each_node_once(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makefile(".yaml", infranode=YAML)
    pytester.makepyfile(TESTS)
    run = infra_run("-n", "2", "-v", "--infra-platform=debian-12,debian-13")
    run.result.assert_outcomes(passed=24)
    out = run.result.stdout.str()
    # Ids are the platform names, as without xdist.
    for test_id in ("test_web[debian-12-0]", "test_db[debian-13-5]"):
        assert test_id in out
    converged = (pytester.path / "converged.txt").read_text().split("\n")
    names = sorted(line.split()[0] for line in converged if line)
    sid = run.session_id
    assert names == sorted(
        f"infranode-{sid}-{p}-{n}" for p in ("debian-12", "debian-13") for n in ("web", "db")
    ), "a node was converged more than once (or not at all)"
    assert len({line.split()[1] for line in converged if line}) >= 1
    # The controller's summary lists the four nodes; nothing is left (containers: infra_run).
    run.result.stdout.fnmatch_lines([f"debian-13*infranode-{sid}-debian-13-db*removed*"])
    assert engine.list_networks([f"{labels.SESSION}={sid}"]) == []
    assert not list(Path(tempfile.gettempdir()).glob(f"infranode-{sid}-*")), "shared dir left"


def test_keep_failure_under_xdist_keeps_the_failed_platform(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    pytester.makefile(".yaml", infranode='provisioner: {name: shell, inline: ["true"]}\n')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_x(host, infra_platform, i):
            assert not (infra_platform.name == "debian-13" and i == 2)
        """
    )
    run = infra_run(
        "-n", "2", "--infra-platform=debian-12,debian-13", "--infra-keep=failure", allow_kept=True
    )
    run.result.assert_outcomes(passed=7, failed=1)
    left = engine.list_containers([f"{labels.SESSION}={run.session_id}"])
    try:
        assert [c.labels[labels.PLATFORM] for c in left] == ["debian-13"]
        assert left[0].name.endswith("-kept")
        run.result.stdout.fnmatch_lines(["*kept infranode-*-debian-13-kept*infranode login*"])
    finally:
        for c in left:
            engine.remove_container(c.id)


def test_sigkill_of_the_whole_xdist_run_is_cleaned_up_by_the_controllers_watchdog(
    pytester: pytest.Pytester, engine: Engine
) -> None:
    pytester.makefile(".yaml", infranode='provisioner: {name: shell, inline: ["true"]}\n')
    pytester.makepyfile(
        """
        import time

        def test_sleeps(infra_node):
            with open("ready", "w") as f:
                f.write(infra_node.session_id)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--infra-platform=debian-12"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the controller and its workers
    )
    ready = pytester.path / "ready"
    deadline = time.monotonic() + 120
    try:
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None, "the inner run ended before its test"
            assert time.monotonic() < deadline, "the inner run never reached its test"
            time.sleep(0.2)
        session_id = ready.read_text()
        assert len(engine.list_containers([f"{labels.SESSION}={session_id}"])) == 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # controller and workers at once, like a cancelled CI job
        proc.wait()
    deadline = time.monotonic() + 30
    left = engine.list_containers([f"{labels.SESSION}={session_id}"])
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = engine.list_containers([f"{labels.SESSION}={session_id}"])
    assert left == [], "the controller's watchdog did not remove the node a worker made"
    assert not list(Path(tempfile.gettempdir()).glob(f"infranode-{session_id}-*")), "shared dir left"


INTERRUPT_BOUND = 30.0
"""Seconds from the SIGINT to the exit of the whole run that the check allows (a behaviour
check, not a speed claim; the measured time is printed)."""


@pytest.mark.parametrize("to", ["controller", "group"])
def test_an_interrupted_xdist_run_removes_every_node_and_ends(
    pytester: pytest.Pytester, engine: Engine, to: str
) -> None:
    """`-n 2`, a node on each worker, then SIGINT: to the controller alone (a `kill -INT`), or to
    the whole process group (Ctrl-C in a terminal). Every node goes, and the run ends soon."""
    pytester.makefile(".yaml", infranode='provisioner: {name: shell, inline: ["true"]}\n')
    pytester.makepyfile(
        """
        import os
        import time

        def test_sleeps(infra_node):
            with open(f"ready-{infra_node.platform.name}", "w") as f:
                f.write(infra_node.session_id)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        as_from_a_terminal(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-n",
                "2",
                "--infra-platform=debian-12,debian-13",
            ]
        ),
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ready = [pytester.path / "ready-debian-12", pytester.path / "ready-debian-13"]
    deadline = time.monotonic() + 240
    try:
        while not all(r.exists() and r.read_text() for r in ready):
            assert proc.poll() is None, "the inner run ended before its tests"
            assert time.monotonic() < deadline, "the inner run never reached its tests"
            time.sleep(0.2)
        session_id = ready[0].read_text()
        assert len(engine.list_containers([f"{labels.SESSION}={session_id}"])) == 2
        started = time.monotonic()
        if to == "controller":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"\nxdist run, SIGINT to the {to}: exit {seconds:.2f} s after the signal")
    left = engine.list_containers([f"{labels.SESSION}={session_id}"])
    for c in left:
        engine.remove_container(c.id)
    assert left == [], f"nodes left right after the exit: {[c.name for c in left]}\n{output}"
    assert seconds < INTERRUPT_BOUND, output
    assert proc.returncode == 2, output
    assert "Traceback" not in output, output
    assert "INTERNALERROR" not in output, output
    assert not list(Path(tempfile.gettempdir()).glob(f"infranode-{session_id}-*")), "shared dir left"


def test_a_worker_that_dies_leaves_nothing_behind(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode='provisioner: {name: shell, inline: ["true"]}\n')
    pytester.makepyfile(
        """
        import os
        import signal

        def test_a_kills_its_worker(infra_node):
            with open("session", "w") as f:
                f.write(infra_node.session_id)
            os.kill(os.getpid(), signal.SIGKILL)  # the worker made (or joined) the node, then dies

        def test_b(host):
            assert host.run("true").rc == 0

        def test_c(host):
            assert host.run("true").rc == 0
        """
    )
    run = infra_run("-n", "2", "--infra-platform=debian-12", subprocess=True)
    out = run.result.stdout.str()
    assert "crashed" in out, out  # xdist reports the dead worker and goes on
    assert "2 passed" in out, out
    assert "INTERNALERROR" not in out
    # infra_run checked that no container of the session is left; the session id is the one
    # the dead worker saw.
    assert run.session_id == (pytester.path / "session").read_text()
