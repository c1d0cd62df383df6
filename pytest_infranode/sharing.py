"""Nodes shared by the processes of one session (pytest-xdist workers): file locks and records.

The controller makes a private directory and hands its path to the workers. For each node (and
each network), the first worker that needs it takes a lock file, makes it, and writes a record
(a small JSON file: the container id, timings, or the error). The others wait on the lock, read
the record, and attach to the same container. ``fcntl.flock`` locks are released by the kernel
when a worker dies, so a crashed worker never blocks the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import final

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@final
class SharedDir:
    """The directory through which the processes of one session agree on their nodes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, session_id: str) -> SharedDir:
        """A new private directory for ``session_id`` (mode 0700), made by the controller."""
        return cls(Path(tempfile.mkdtemp(prefix=f"infranode-{session_id}-")))

    def _file(self, key: str, suffix: str) -> Path:
        return self.path / (_UNSAFE.sub("_", key.replace("/", "__")) + suffix)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` (blocks while another process holds it)."""
        with open(self._file(key, ".lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._file(key, ".json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def write(self, key: str, record: dict[str, Any]) -> None:
        """Write the record of ``key`` atomically (readers never see half a file)."""
        target = self._file(key, ".json")
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, target)

    def records(self, prefix: str) -> list[dict[str, Any]]:
        """Every record whose key starts with ``prefix``, oldest first."""
        found = []
        files = sorted(self.path.glob(_UNSAFE.sub("_", prefix) + "*.json"), key=lambda p: p.stat().st_mtime)
        for path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                found.append(data)
        return found

    def mark(self, key: str) -> None:
        """Leave a flag (a failed platform, …) for the controller."""
        self._file(key, ".flag").touch()

    def flags(self, prefix: str) -> set[str]:
        stem = _UNSAFE.sub("_", prefix)
        return {p.name[len(stem) : -len(".flag")] for p in self.path.glob(stem + "*.flag")}

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
