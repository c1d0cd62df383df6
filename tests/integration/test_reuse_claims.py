"""--infra-reuse sessions on one daemon at once: a kept node is claimed by one of them; the
other makes its own node; neither touches the other's, and what --infra-keep keeps is all
that is left. Real concurrent sessions (pytest subprocesses), one kept node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_infranode import claims
from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.reaper import KEPT_SUFFIX

CONVERGE = "echo converged >> /etc/converge-count\n"
SPEC = """
import os
import time

def test_node_stays_usable(host):
    hold = os.environ["HOLD_NODE"]
    if hold == "until-released":  # the outer test says when (a file): no race with a timer
        deadline = time.monotonic() + 180
        while not os.path.exists("released") and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        time.sleep(float(hold))
    lines = host.file("/etc/converge-count").content_string.splitlines()
    print("COUNT", len(lines), "HOST", host.check_output("hostname"))
"""
INFRANODE = str(Path(sys.executable).parent / "infranode")
SESSION_RE = re.compile(r"session ([0-9a-f]{16})")


@dataclass
class Run:
    """One inner pytest session started in the background."""

    proc: subprocess.Popen[bytes]
    output: Path
    started: float
    out: str = ""
    took: float = 0.0

    def wait(self) -> Run:
        self.proc.wait(timeout=300)
        self.out = self.output.read_text()
        if not self.took:
            self.took = time.monotonic() - self.started
        return self

    @property
    def session_id(self) -> str:
        match = SESSION_RE.search(self.out)
        assert match, self.out
        return match.group(1)

    @property
    def reused(self) -> bool:
        return "reusing kept node" in self.out


def _wait_all(*runs: Run) -> None:
    """Wait for every run, each one's time taken up to its own exit."""
    waiting = list(runs)
    while waiting:
        for run in [r for r in waiting if r.proc.poll() is not None]:
            run.took = time.monotonic() - run.started
            waiting.remove(run)
        time.sleep(0.1)
    for run in runs:
        run.wait()


def _start(path: Path, hold: float | str, *options: str) -> Run:
    argv = [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "--infra-platform=debian-12"]
    env = {**os.environ, "HOLD_NODE": str(hold)}
    output = path.parent / f"run-{time.monotonic_ns()}.out"
    with output.open("wb") as out:  # a file, not a pipe: nothing blocks on a full pipe
        proc = subprocess.Popen(
            [*argv, "--infra-reuse", *options], cwd=path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Run(proc, output, time.monotonic())


def _kept(engine: Engine, same_as: str = "") -> dict[str, str]:
    """Kept nodes (with the converge key of the kept node ``same_as``, when given)."""
    found = engine.list_containers([labels.CONVERGE])
    if same_as:
        key = next(c.labels[labels.CONVERGE] for c in found if c.id == same_as)
        found = [c for c in found if c.labels[labels.CONVERGE] == key]
    return {c.id: c.name for c in found if c.name.endswith(KEPT_SUFFIX)}


def _passed(run: Run) -> None:
    assert run.proc.returncode == 0, run.out
    assert "1 passed" in run.out, run.out


@pytest.fixture
def project(pytester: pytest.Pytester, engine: Engine) -> Iterator[tuple[Path, str]]:
    """A project with one kept node (its id); every kept node of the test is removed at the end with
    ``infranode cleanup --session``, the way the summary says."""
    # The test's own converge inputs: no other kept node (another test's) has their key.
    (pytester.path / "converge.sh").write_text(f"{CONVERGE}# {pytester.path}\n")
    pytester.makefile(".yaml", infranode="provisioner:\n  name: shell\n  script: converge.sh\n")
    pytester.makepyfile(SPEC)
    before = set(_kept(engine))
    try:
        first = _start(pytester.path, 0, "--infra-keep=always").wait()
        _passed(first)
        (kept_id,) = set(_kept(engine)) - before
        yield pytester.path, kept_id
    finally:
        found = engine.list_containers([labels.SESSION])
        sessions = {c.labels[labels.SESSION] for c in found if c.id in set(_kept(engine)) - before}
        for session_id in sorted(sessions):
            subprocess.run([INFRANODE, "cleanup", "--session", session_id], check=True, capture_output=True)
        assert set(_kept(engine)) - before == set()


def _left(engine: Engine, *runs: Run) -> list[str]:
    return sorted(c.name for r in runs for c in engine.list_containers([f"{labels.SESSION}={r.session_id}"]))


def test_two_sessions_started_together_one_reuses_the_kept_node(
    project: tuple[Path, str], engine: Engine
) -> None:
    """Both start at once and both hold their node until each has one: one claimed the kept
    node, the other made its own. Which one wins is the daemon's choice."""
    path, kept_id = project
    kept_name = _kept(engine)[kept_id]
    key = next(
        c.labels[labels.CONVERGE] for c in engine.list_containers([labels.CONVERGE]) if c.id == kept_id
    )
    first, second = _start(path, "until-released"), _start(path, "until-released")
    try:
        deadline = time.monotonic() + 180
        while not (
            engine.list_containers([f"{labels.CLAIM}={kept_id}"])
            and [c for c in engine.list_containers([f"{labels.CONVERGE}={key}"]) if c.id != kept_id]
        ):
            assert first.proc.poll() is None, first.wait().out
            assert second.proc.poll() is None, second.wait().out
            assert time.monotonic() < deadline, "no claim and no second node after 180 s"
            time.sleep(0.2)
    finally:
        (path / "released").touch()
        _wait_all(first, second)
    _passed(first)
    _passed(second)
    winners = [r for r in (first, second) if r.reused]
    assert len(winners) == 1, (first.out, second.out)
    (loser,) = [r for r in (first, second) if not r.reused]
    assert f"reusing kept node {kept_name}" in winners[0].out
    assert f"kept node {kept_name} is in use by another session; making a new node" in loser.out
    assert "COUNT 1" in loser.out
    assert "COUNT 1" in winners[0].out
    # Without --infra-keep the winner consumed the kept node, the loser removed its own, and
    # neither left anything, not even the claim.
    assert kept_id not in _kept(engine)
    assert _left(engine, first, second) == []
    assert engine.list_containers([f"{labels.CLAIM}={kept_id}"]) == []
    winner = "first" if winners[0] is first else "second"
    print(f"MEASURED together: winner={winner} started; first={first.took:.1f}s second={second.took:.1f}s")


def test_a_short_session_leaves_the_node_a_long_one_holds(project: tuple[Path, str], engine: Engine) -> None:
    """The report of issue #20: a long --infra-reuse run holds the kept node, a short one
    starts during it. The short one makes its own node and removes only that."""
    path, kept_id = project
    long = _start(path, "until-released", "--infra-keep=always")
    try:
        deadline = time.monotonic() + 120
        while not engine.list_containers([f"{labels.CLAIM}={kept_id}"]):
            assert long.proc.poll() is None, long.wait().out
            assert time.monotonic() < deadline, "the long session never claimed the kept node"
            time.sleep(0.2)
        short = _start(path, 0, "--infra-keep=always").wait()
        _passed(short)
        assert not short.reused
        assert long.proc.poll() is None, "the long session ended before the short one: nothing was shared"
        claim = engine.list_containers([f"{labels.CLAIM}={kept_id}"])
        assert [c.name for c in claim] == [claims.marker_name(kept_id)]
    finally:
        (path / "released").touch()  # the long session's test ends now, whatever happened here
        long.wait()
    _passed(long)
    assert long.reused
    # --infra-keep=always: the reused node and the short session's own node stay, nothing else.
    (own,) = _left(engine, short)
    assert own.endswith(KEPT_SUFFIX)
    assert sorted(_kept(engine, same_as=kept_id).values()) == sorted([own, _kept(engine)[kept_id]])
    assert _left(engine, long) == []  # the reused node carries its first session's label
    assert engine.list_containers([f"{labels.CLAIM}={kept_id}"]) == []
    print(f"MEASURED held: long={long.took:.1f}s short={short.took:.1f}s")


def test_of_claims_made_at_once_on_the_real_daemon_exactly_one_wins(engine: Engine) -> None:
    """The daemon's name registry is what makes a claim atomic: 2 threads, 10 rounds."""
    owner = f"{os.uname().nodename}:{os.getpid()}"
    session = labels.new_session_id()
    spec = ContainerSpec(
        f"infranode-{session}-claimed-kept",
        "debian:12",
        "claimed",
        labels.node_labels(session, "x", "y", owner),
    )
    wins: list[int] = []
    for _ in range(10):
        target = engine.create_container(
            spec, {"image": "debian:12", "name": spec.name, "labels": dict(spec.labels), "command": ["true"]}
        )
        won: list[str] = []
        barrier = threading.Barrier(2)

        def claim(
            who: str, target: str = target, won: list[str] = won, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            if claims.claim(engine, target, session_id=f"{session}-{who}", owner=owner):
                won.append(who)

        threads = [threading.Thread(target=claim, args=(who,)) for who in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wins.append(len(won))
        for c in engine.list_containers([f"{labels.CLAIM}={target}"]):
            engine.remove_container(c.id)
        engine.remove_container(target)
    print(f"MEASURED claims at once: winners per round {wins}")
    assert wins == [1] * 10
