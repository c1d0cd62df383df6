"""Showing streamed converge output line by line, with a prefix naming the node."""

from __future__ import annotations

from collections.abc import Callable
from typing import final


@final
class LineEcho:
    """An output sink that hands complete lines, prefixed, to ``write``; :meth:`flush` the rest.

    Chunks from a tool end anywhere (mid-line, mid-character): lines are cut at ``\\n`` only and
    decoded whole, so a multi-byte character split across two chunks is shown intact.
    """

    def __init__(self, write: Callable[[str], None], prefix: str = "") -> None:
        self._write = write
        self._prefix = prefix
        self._pending = b""

    def __call__(self, chunk: bytes) -> None:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        for line in lines:
            self._write(self._prefix + line.decode("utf-8", "replace").rstrip("\r"))

    def flush(self) -> None:
        if self._pending:
            self._write(self._prefix + self._pending.decode("utf-8", "replace").rstrip("\r"))
            self._pending = b""
