"""The session's daemon: connected once (what expired sessions left there is swept then), and
the watchdog, the process that removes this session's nodes if pytest dies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import final

from pytest_infranode import reaper
from pytest_infranode.engine import Engine
from pytest_infranode.targets import Identity


@final
class Connection:
    """The engine of one session (made on first use) and its watchdog.

    Under pytest-xdist a worker neither sweeps nor watches: its controller does both.
    """

    def __init__(self, docker_host: str | None, *, log_dir: Path, say: Callable[[str], None]) -> None:
        self.docker_host = docker_host
        self.log_dir = log_dir
        self.say = say
        self.engine: Engine | None = None
        self.watchdog: reaper.Watchdog | None = None

    def connect(self, identity: Identity) -> Engine:
        """Connect to the daemon once, and sweep what expired sessions left there."""
        if self.engine is None:
            self.engine = Engine.connect(self.docker_host)
            removed = (
                []
                if identity.role == "worker"
                else reaper.sweep_expired(self.engine, exclude=identity.session_id)
            )
            if removed:
                self.say(f"removed {len(removed)} node(s) left by expired sessions: {', '.join(removed)}")
        return self.engine

    def start_watchdog(self, identity: Identity) -> None:
        """Start the watchdog (once); an xdist controller starts it for its workers (and it
        removes their shared directory too)."""
        if self.watchdog is None and identity.role != "worker":  # a worker's controller watches
            self.log_dir.mkdir(parents=True, exist_ok=True)
            shared = identity.shared if identity.role == "controller" else None
            self.watchdog = reaper.Watchdog(
                identity.session_id,
                self.docker_host,
                str(self.log_dir / f"watchdog-{identity.session_id}.log"),
                remove_dir=str(shared) if shared else None,
            )

    def release_watchdog(self) -> None:
        """The session cleaned up after itself: the watchdog has nothing left to do."""
        if self.watchdog is not None:
            self.watchdog.release()
            self.watchdog = None
