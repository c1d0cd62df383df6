"""A real exec engine on this machine, for the exec channel's tests: not a fake.

:class:`LocalExecEngine` is what the channel (``pytest_infranode/channel.py``) needs from an
engine (:class:`~pytest_infranode.engine.api.ShellEngine`), served by real ``/bin/sh`` processes
here instead of a container, so the channel's framing, timeouts and dying shells are tested
against a real shell without Docker. The session's tests use the fake engine of ``fakes.py``,
which runs nothing.
"""

from __future__ import annotations

import contextlib
import queue
import struct
import subprocess
import threading
from collections.abc import Mapping
from collections.abc import Sequence

from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import OutputSink
from pytest_infranode.errors import NodeError


def frame(stream: int, payload: bytes) -> bytes:
    """One frame of Docker's multiplexed attach stream."""
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class LocalShell:
    """A ShellStream over a local process, framing its output as Docker does."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.readers = [
            threading.Thread(target=self._pump, args=(number, pipe), daemon=True)
            for number, pipe in ((1, self.proc.stdout), (2, self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()
        self.open_pipes = 2
        self.closed = False

    def _pump(self, number: int, pipe: object) -> None:
        read = pipe.read1  # type: ignore[attr-defined]
        while chunk := read(65536):
            self.frames.put(frame(number, chunk))
        self.frames.put(b"")

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def recv(self, size: int, timeout: float | None) -> bytes:
        while True:
            try:
                data = self.frames.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError from None
            if data:
                return data
            self.open_pipes -= 1
            if self.open_pipes == 0:
                return b""

    def exit_status(self) -> int | None:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        return 128 - code if code < 0 else code

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()
        for reader in self.readers:
            reader.join()
        for pipe in (self.proc.stdout, self.proc.stderr):
            assert pipe is not None
            pipe.close()


class LocalExecEngine:
    """A :class:`~pytest_infranode.engine.api.ShellEngine` whose "container" is this machine:
    ``open_shell`` and ``exec`` start real local processes. Records what it was asked;
    :attr:`state` plays the container's state (set it to ``exited`` for a dead node)."""

    def __init__(self, shell_argv: Sequence[str] | None = None) -> None:
        self.shell_argv = shell_argv
        self.shells: list[LocalShell] = []
        self.shell_users: list[str | None] = []
        self.execs: list[list[str]] = []
        self.state = "running"

    def open_shell(self, container_id: str, argv: Sequence[str], *, user: str | None = None) -> LocalShell:
        if self.state != "running":
            raise NodeError("not running")
        shell = LocalShell(self.shell_argv or argv)
        self.shells.append(shell)
        self.shell_users.append(user)
        return shell

    def container_state(self, container_id: str) -> str:
        return self.state

    def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        on_output: OutputSink | None = None,
    ) -> ExecResult:
        self.execs.append(list(argv))
        if self.state != "running":
            raise NodeError("not running")
        done = subprocess.run(list(argv), capture_output=True, check=False)
        return ExecResult(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        for shell in self.shells:
            shell.close()
