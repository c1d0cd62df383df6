"""A process in a container with its stdin attached: the transport under the exec channel."""

from __future__ import annotations

import contextlib
from typing import Any
from typing import final

import docker.errors

_UNSET: Any = object()


@final
class AttachedExec:
    """One ``exec`` started with ``stdin`` attached, as a raw byte stream.

    What :meth:`recv` returns is Docker's multiplexed attach stream (``tty=False``): frames of an
    8-byte header (stream number, 3 zero bytes, big-endian length) and a payload. What
    :meth:`send` writes reaches the process's stdin unframed.

    :param api: docker-py's low-level ``APIClient``.
    :param exec_id: the exec instance, already started.
    :param sock: what ``exec_start(socket=True)`` returned: a ``socket.SocketIO`` over a local
        or TCP socket, the TLS socket itself, or a paramiko channel for ``ssh://``.
    """

    def __init__(self, api: Any, exec_id: str, sock: Any) -> None:
        self._api = api
        self.exec_id = exec_id
        self._io = sock
        self._sock = getattr(sock, "_sock", sock)
        # docker-py hangs the HTTP response on TLS sockets so it is not collected (which would
        # close the socket); we close it ourselves, with everything else, in close().
        self._response = getattr(sock, "_response", None)
        self._timeout: Any = _UNSET
        self.closed = False

    def send(self, data: bytes) -> None:
        """Write ``data`` to the process's stdin. :raises OSError: when the stream is gone."""
        self._sock.sendall(data)

    def recv(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` bytes of the attach stream; ``b""`` once it has ended.

        :raises TimeoutError: when nothing came within ``timeout`` seconds (None: wait).
        :raises OSError: when the connection broke.
        """
        if timeout != self._timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout
        return bytes(self._sock.recv(size))

    def exit_status(self) -> int | None:
        """The process's exit status, or None while it runs (or when the daemon cannot say)."""
        try:
            data = self._api.exec_inspect(self.exec_id)
        except (docker.errors.DockerException, OSError):
            return None
        code = data.get("ExitCode")
        if data.get("Running") or code is None:
            return None
        return int(code)

    def close(self) -> None:
        """Close the socket, its file wrapper and the HTTP response; safe to call twice.

        Each must be closed: closing only the ``SocketIO`` leaves the socket open until the
        garbage collector finds it, which reports an unclosed socket (an error under ``-W error``).
        """
        self.closed = True
        with contextlib.suppress(Exception):
            self._sock.shutdown(2)  # socket.SHUT_RDWR: the shell sees EOF on its stdin at once
        for end in (self._sock, self._io, self._response):
            if end is not None:
                with contextlib.suppress(Exception):
                    end.close()
