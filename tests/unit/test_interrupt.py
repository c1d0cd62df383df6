"""The session's interrupt (interrupt.py), and a runner-side tool killed by it: no daemon."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_infranode import interrupt
from pytest_infranode.errors import Interrupted
from pytest_infranode.interrupt import Cancel
from pytest_infranode.provisioners._common import run_streaming


def test_check_raises_only_once_set() -> None:
    cancel = Cancel()
    cancel.check("the converge of web")
    cancel.set("SIGINT")
    with pytest.raises(Interrupted, match=r"interrupted \(SIGINT\) before the converge of web"):
        cancel.check("the converge of web")


def test_set_calls_every_stop_once_and_a_late_stop_at_once() -> None:
    cancel = Cancel()
    called: list[str] = []
    with cancel.bound():
        with interrupt.stopping(lambda: called.append("a")), interrupt.stopping(lambda: called.append("b")):
            cancel.set("SIGTERM")
            cancel.set("SIGINT")  # the second one changes nothing
        with interrupt.stopping(lambda: called.append("late")):
            pass
    assert called == ["a", "b", "late"]
    assert cancel.reason == "SIGTERM"


def test_a_failing_stop_does_not_keep_the_others_from_running() -> None:
    cancel = Cancel()
    called: list[str] = []

    def broken() -> None:
        raise ProcessLookupError

    with cancel.bound(), interrupt.stopping(broken), interrupt.stopping(lambda: called.append("b")):
        cancel.set("SIGINT")
    assert called == ["b"]


def test_phases_are_per_thread_and_the_innermost_is_kept() -> None:
    cancel = Cancel()
    inside = threading.Barrier(2)
    release = threading.Event()

    def job(name: str) -> None:
        with interrupt.phase(f"the converge of {name}"):
            if name == "db":
                interrupt.now("the idempotence run of db")
            inside.wait()
            release.wait()

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(cancel.wrap(job), name) for name in ("web", "db")]
        deadline = time.monotonic() + 5
        while len(cancel.phases()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        cancel.set("SIGINT")
        release.set()
        for future in futures:
            future.result()
    assert sorted(cancel.interrupted_during) == ["the converge of web", "the idempotence run of db"]
    assert cancel.phases() == ()


def test_without_a_bound_cancel_nothing_happens() -> None:
    assert interrupt.current() is None
    with interrupt.stopping(lambda: pytest.fail("called")), interrupt.phase("x"):
        interrupt.now("y")


def test_a_runner_tool_and_its_children_are_killed_at_once() -> None:
    """The tool's child holds the output pipe too: the whole process group goes."""
    cancel = Cancel()
    chunks: list[bytes] = []
    script = (
        "import subprocess, time; child = subprocess.Popen(['sleep', '60']); "
        "print('started', child.pid, flush=True); time.sleep(60)"
    )

    def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    def run() -> int:
        return run_streaming([sys.executable, "-c", script], sink)

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(cancel.wrap(run))
        deadline = time.monotonic() + 10
        while b"started" not in b"".join(chunks) and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        cancel.set("SIGINT")
        status = future.result(timeout=10)
        took = time.monotonic() - started
    assert status == -9
    assert took < 5
    child = int(b"".join(chunks).split()[1])
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the tool's child outlived it"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
