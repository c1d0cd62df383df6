"""Nothing is left behind on any exit path: signals, SIGKILL, converge timeouts, expired sessions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import ContainerInfo
from pytest_infranode.engine.api import ContainerSpec
from tests.integration.conftest import SESSION_RE
from tests.integration.conftest import InfraRun
from tests.integration.conftest import as_from_a_terminal

Run = Callable[..., InfraRun]

INLINE = """
provisioner:
  name: shell
  inline: ["true"]
"""

SLEEPING_TEST = """
import time

def test_sleeps(infra_node):
    with open("ready", "w") as f:
        f.write(infra_node.session_id)
    time.sleep(120)
"""


def _session_containers(engine: Engine, session_id: str) -> list[ContainerInfo]:
    return engine.list_containers([f"{labels.SESSION}={session_id}"])


def _start_sleeping_session(pytester: pytest.Pytester) -> tuple[subprocess.Popen[bytes], str]:
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(SLEEPING_TEST)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--infra-platform=debian-12"]
    proc = subprocess.Popen(
        as_from_a_terminal(argv),
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # SIGABRT then prints every thread's stack: what a session that does not end waits for
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    ready = pytester.path / "ready"
    deadline = time.monotonic() + 120
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate()[0].decode()
            pytest.fail(f"the inner session did not reach its test:\n{out}")
        time.sleep(0.2)
    return proc, ready.read_text()


def _wait_gone(engine: Engine, session_id: str, seconds: float) -> list[ContainerInfo]:
    deadline = time.monotonic() + seconds
    left = _session_containers(engine, session_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _session_containers(engine, session_id)
    return left


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_runs_teardown(pytester: pytest.Pytester, engine: Engine, sig: signal.Signals) -> None:
    proc, session_id = _start_sleeping_session(pytester)
    assert len(_session_containers(engine, session_id)) == 1
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out = proc.communicate(timeout=30)[0]
        left = _session_containers(engine, session_id)
        pytest.fail(
            f"the session did not end within 120 s of {sig.name}; its containers: {left}\n"
            + out.decode(errors="replace")[-12000:]
        )
    assert proc.returncode != 0
    assert b"Traceback" not in out
    # Teardown ran in the process itself: the node is gone when it exits.
    assert _session_containers(engine, session_id) == []


def test_sigkill_is_cleaned_up_by_the_watchdog(pytester: pytest.Pytester, engine: Engine) -> None:
    proc, session_id = _start_sleeping_session(pytester)
    assert len(_session_containers(engine, session_id)) == 1
    proc.kill()
    proc.communicate(timeout=10)
    left = _wait_gone(engine, session_id, 30)
    assert left == [], "the watchdog did not remove the node of a SIGKILLed session"


def test_converge_timeout_stops_the_converge(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - echo about-to-hang; sleep 600
        """,
    )
    pytester.makepyfile("def test_a(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-12", "--infra-converge-timeout=3")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(["*ran longer than the converge timeout (3 s) and was stopped*"])
    assert "Traceback" not in run.result.stdout.str()


def _finished_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _labelled_container(engine: Engine, session_id: str, owner: str) -> str:
    name = f"infranode-test-{session_id}"
    spec = ContainerSpec(
        name=name,
        image="debian:12",
        hostname=name,
        labels={
            labels.SESSION: session_id,
            labels.PLATFORM: "debian-12",
            labels.NODE: name,
            labels.PID: owner,
            labels.CREATED: str(int(time.time())),
        },
        command=("sleep", "300"),
        init="none",
    )
    cid = engine.create_container(spec)
    engine.start_container(cid)
    return cid


def test_next_session_sweeps_expired_sessions_only(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    host = os.uname().nodename
    dead = _labelled_container(engine, "deadbeef00000001", f"{host}:{_finished_pid()}")
    # A live session of another test process on this machine (our own pid is alive).
    live = _labelled_container(engine, "deadbeef00000002", f"{host}:{os.getpid()}")
    other_host = _labelled_container(engine, "deadbeef00000003", "some-other-runner:1")
    try:
        pytester.makefile(".yaml", infranode=INLINE)
        pytester.makepyfile("def test_a(host):\n    pass\n")
        run = infra_run("--infra-platform=debian-12")
        run.result.assert_outcomes(passed=1)
        run.result.stdout.fnmatch_lines(["*removed 1 node(s) left by expired sessions*"])
        assert engine.container_state(dead) == "missing"
        assert engine.container_state(live) == "running"
        assert engine.container_state(other_host) == "running"  # younger than the time-to-live
    finally:
        for cid in (dead, live, other_host):
            engine.remove_container(cid)


def test_kept_node_survives_the_next_session_until_cleanup(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine, tmp_path: Path
) -> None:
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile("def test_fails(host):\n    assert False\n")
    kept_run = pytester.runpytest_subprocess("--infra-platform=debian-12", "--infra-keep=failure")
    kept_run.assert_outcomes(failed=1)
    kept_run.stdout.fnmatch_lines(["*kept infranode-*-debian-12-kept*infranode login*"])
    match = SESSION_RE.search(kept_run.stdout.str())
    assert match, kept_run.stdout.str()
    # this session's kept node only: a node another run kept earlier is not this test's business
    kept = [
        c for c in engine.list_containers([f"{labels.SESSION}={match.group(1)}"]) if c.name.endswith("-kept")
    ]
    kept_ids = {c.id for c in kept}
    assert kept_ids
    try:
        pytester.makepyfile("def test_fails(host):\n    pass\n")
        infra_run("--infra-platform=debian-12").result.assert_outcomes(passed=1)
        # The test process of the kept node has exited, yet its kept node is spared.
        assert all(engine.container_state(cid) == "running" for cid in kept_ids)
        # the hint names this session's removal, not a sweep of every session's kept nodes
        hint = f"infranode cleanup --session {match.group(1)}"
        assert hint in kept_run.stdout.str()
        cleanup = subprocess.run(
            [sys.executable, "-m", "pytest_infranode.cli", *hint.split()[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        assert cleanup.returncode == 0, cleanup.stderr
        assert all(engine.container_state(cid) == "missing" for cid in kept_ids)
    finally:
        for cid in kept_ids:
            engine.remove_container(cid)


def test_node_killed_during_a_test_fails_the_next_ones_clearly(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(
        """
        def test_1_kills_its_node(infra_node):
            infra_node.engine.kill_container(infra_node.container_id)

        def test_2_runs_a_check(host):
            assert host.run("true").rc == 0
        """
    )
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(passed=1, failed=1)
    # testinfra's commands go through the node's exec channel, which names the dead node (#9).
    run.result.stdout.fnmatch_lines(["*ChannelError: the node is not running (container state: exited)*"])


def test_command_timeout_fails_only_the_hanging_check(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(
        """
        def test_1_hangs(host):
            host.run("sleep 600")

        def test_2_next_check_works(host):
            assert host.run("echo still-here").stdout == "still-here\\n"
        """
    )
    run = infra_run("--infra-platform=debian-12", "--infra-command-timeout=2")
    run.result.assert_outcomes(passed=1, failed=1)
    run.result.stdout.fnmatch_lines(["*the command ran longer than its timeout of 2 s and was killed*"])
