"""Crash-proof cleanup of everything a session labels.

Three layers, so that nothing is left behind whatever happens to the test process:

1. Teardown at the end of the session (``InfraSession.teardown``), also after Ctrl-C and SIGTERM.
2. A watchdog: a small detached process started with the first node. It holds the read end of a
   pipe from the test process; when the pipe closes without the word ``done`` (the test process
   was SIGKILLed, OOM-killed, crashed), it removes the session's resources through the Docker
   API. It needs no privileged sidecar and no socket mount, so it works against remote daemons
   and rootless Docker or Podman alike.
3. A sweep at the start of the next session (and ``infranode cleanup``) removes what an expired
   session left: one whose process is gone on this machine, or, for another machine, one older
   than the time-to-live. Live sessions and resources without our labels are never touched.

A kept node is removed only once the sweep holds its claim (``claims.py``), so that a node a
live session took over (``--infra-reuse``) is spared, with no window between look and removal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO
from typing import Any

from pytest_infranode import claims
from pytest_infranode import labels
from pytest_infranode.engine.api import CleanupEngine
from pytest_infranode.engine.api import ContainerInfo
from pytest_infranode.engine.api import NetworkInfo

KEPT_SUFFIX = "-kept"
"""Kept nodes are renamed with this suffix; the automatic sweep leaves them for the user."""
DEFAULT_TTL = 24 * 3600.0
"""Sessions of other machines older than this are considered dead (seconds)."""


def sweep_networks(
    engine: CleanupEngine, label_filters: Sequence[str], sessions: set[str] | None = None
) -> list[str]:
    """Remove the labelled networks (of ``sessions`` only, when given) that no container uses.

    Call it after the containers are gone.
    """
    removed = []
    for net in engine.list_networks(label_filters):
        if sessions is not None and net.labels.get(labels.SESSION) not in sessions:
            continue
        if engine.remove_network(net.id):
            removed.append(net.name)
    return removed


InUse = Callable[[str, str], None]
"""Told ``(node name, claiming session)`` of a kept node a sweep spared: another session holds it."""


def _markers_first(found: Sequence[ContainerInfo]) -> list[ContainerInfo]:
    """Claims before nodes: a dead session's claim goes before the node it held is looked at."""
    return sorted(found, key=lambda c: not claims.is_marker(c))


def remove_claimed(engine: CleanupEngine, container: ContainerInfo, in_use: InUse) -> bool:
    """Remove the kept node ``container`` if this sweep can claim it, else tell ``in_use`` who
    holds it. Returns whether it was removed."""
    marker = claims.claim(engine, container.id, session_id=labels.new_session_id(), owner=labels.owner())
    if not marker:
        holders = claims.claimed_by(engine.list_containers([labels.CLAIM]))
        in_use(container.name, holders.get(container.id, "?"))
        return False
    engine.remove_container(container.id)
    engine.remove_container(marker)
    return True


def sweep(
    engine: CleanupEngine,
    *,
    session_id: str | None = None,
    keep: frozenset[str] = frozenset(),
    in_use: InUse | None = None,
) -> list[str]:
    """Remove the containers of one session (or, without ``session_id``, of every session).

    :param keep: container ids to leave alone (nodes kept for a look).
    :param in_use: when given, a kept node is removed only if the sweep can claim it, and
        ``in_use`` is told of those another session holds; without it, kept nodes go too.
    :return: the names of the nodes removed (claims are not nodes).
    """
    wanted = [f"{labels.SESSION}={session_id}"] if session_id else [labels.SESSION]
    removed = []
    for container in _markers_first(engine.list_containers(wanted)):
        if container.id in keep:
            continue
        if in_use is not None and container.name.endswith(KEPT_SUFFIX):
            if remove_claimed(engine, container, in_use):
                removed.append(container.name)
            continue
        engine.remove_container(container.id)
        if not claims.is_marker(container):
            removed.append(container.name)
    sweep_networks(engine, wanted)
    return removed


@dataclass(frozen=True, slots=True)
class SessionSeen:
    """One session as its containers' labels describe it."""

    session_id: str
    owner: str
    created: float
    names: tuple[str, ...]


def sessions(found: Sequence[ContainerInfo | NetworkInfo]) -> list[SessionSeen]:
    """Group labelled containers (and networks) by session. Pure."""
    grouped: dict[str, SessionSeen] = {}
    for c in found:
        lab = c.labels
        sid = lab.get(labels.SESSION)
        if not sid:
            continue
        try:
            created = float(lab.get(labels.CREATED, "0"))
        except ValueError:
            created = 0.0
        prev = grouped.get(sid)
        names = (*prev.names, c.name) if prev else (c.name,)
        grouped[sid] = SessionSeen(
            sid, str(lab.get(labels.PID, "")), max(created, prev.created if prev else 0), names
        )
    return list(grouped.values())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def is_expired(seen: SessionSeen, *, now: float, ttl: float, hostname: str, alive: Any = _pid_alive) -> bool:
    """Whether a session is dead: its process is gone on this machine, or it is older than ``ttl``."""
    host, _, pid = seen.owner.rpartition(":")
    if host == hostname and pid.isdigit():
        return not alive(int(pid))
    return seen.created > 0 and now - seen.created > ttl


def sweep_expired(
    engine: CleanupEngine,
    *,
    ttl: float = DEFAULT_TTL,
    include_kept: bool = False,
    exclude: str = "",
    in_use: InUse = lambda _name, _session: None,
) -> list[str]:
    """Remove the containers of expired sessions (never ``exclude``, never live ones).

    Kept nodes (renamed with ``-kept``) stay unless ``include_kept``; even then, one a live
    session holds the claim of stays, and ``in_use`` is told.
    """
    containers = engine.list_containers([labels.SESSION])
    networks = engine.list_networks([labels.SESSION])
    hostname = os.uname().nodename
    now = time.time()
    dead = {
        s.session_id
        for s in sessions([*containers, *networks])
        if s.session_id != exclude and is_expired(s, now=now, ttl=ttl, hostname=hostname)
    }
    removed = []
    for c in _markers_first(containers):
        if c.labels.get(labels.SESSION) not in dead:
            continue
        if not c.name.endswith(KEPT_SUFFIX):
            engine.remove_container(c.id)
            if not claims.is_marker(c):
                removed.append(c.name)
        elif include_kept and remove_claimed(engine, c, in_use):
            removed.append(c.name)
    # Networks of sessions whose containers are all gone (a kept node keeps its network).
    live = {s.session_id for s in sessions(engine.list_containers([labels.SESSION]))} if dead else set()
    sweep_networks(engine, [labels.SESSION], dead - live)
    return removed


class Watchdog:
    """The detached process that cleans up after a test process that died without teardown."""

    def __init__(
        self, session_id: str, docker_host: str | None, log_path: str, remove_dir: str | None = None
    ) -> None:
        argv = [sys.executable, "-m", "pytest_infranode.reaper", "--session", session_id]
        if docker_host:
            argv += ["--docker-host", docker_host]
        if remove_dir:  # the directory xdist workers share (see sharing.py)
            argv += ["--remove-dir", remove_dir]
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # survives the test process and its Ctrl-C
                close_fds=True,
            )

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else -1

    def release(self) -> None:
        """Teardown finished: tell the watchdog to exit without sweeping."""
        proc, self._proc = self._proc, None
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(b"done\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch(session_id: str, docker_host: str | None, stdin: IO[bytes], remove_dir: str | None = None) -> int:
    data = stdin.read()  # blocks until the test process closes the pipe or dies
    if data.strip() == b"done":
        return 0
    if remove_dir:
        shutil.rmtree(remove_dir, ignore_errors=True)
    from pytest_infranode.engine import Engine  # only now: the watchdog waits cheaply

    for attempt in range(10):
        try:
            engine = Engine.connect(docker_host, wait=5)
            removed = sweep(engine, session_id=session_id)
            engine.close()
        except Exception as exc:  # the daemon may be restarting; try again for a while
            print(f"infranode watchdog: sweep of {session_id} failed ({exc}); retrying", file=sys.stderr)
            time.sleep(min(2**attempt, 10))
            continue
        print(
            f"infranode watchdog: session {session_id} ended without teardown; removed {removed}",
            file=sys.stderr,
        )
        return 0
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_infranode.reaper")
    parser.add_argument("--session", required=True)
    parser.add_argument("--docker-host", default=None)
    parser.add_argument("--remove-dir", default=None)
    args = parser.parse_args(argv)
    return _watch(args.session, args.docker_host, sys.stdin.buffer, args.remove_dir)


if __name__ == "__main__":
    sys.exit(main())
