"""The channel relay: a runner-side tool's commands go through the nodes' exec channels.

ansible-playbook forks a worker per task, and each worker makes a new connection; a
``docker exec`` per command (~45 ms) is most of a task's time. The relay is a Unix socket,
served by a thread of the converging process, through which every worker reaches a long-lived
shell per node and user (:class:`~pytest_infranode.channel.Channel`, ~0.2 ms a command) that
outlives the tasks. The provisioner starts it around a run and passes its address in
``INFRANODE_CHANNEL_RELAY``; the socket sits in a directory only this user can enter, and
it serves only the containers of that run.

The wire: each message is a 4-byte big-endian length, a JSON header, then ``size`` bytes::

    request  {"op": "run", "container": …, "user": …, "cmd": …, "stdin": bool}   + stdin
             {"op": "put", "container": …, "user": …, "path": …}                 + content
             {"op": "fetch", "container": …, "user": …, "path": …}
    reply    {"status": n, "out": len, "err": len}                              + out + err
             {"error": text, "unavailable": bool}

:class:`NodeFiles` is what both ends share: a command, a file in, a file out over a channel.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import shlex
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Collection
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Protocol
from typing import final

from pytest_infranode.channel import Channel
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import ShellEngine
from pytest_infranode.errors import ChannelError
from pytest_infranode.errors import ChannelUnavailable
from pytest_infranode.errors import InfranodeError

RELAY_ENV = "INFRANODE_CHANNEL_RELAY"
"""The environment variable that carries the relay's socket path to the tool."""
INLINE_PUT = 1024 * 1024
"""Files up to this size go through the channel (base64 on the command's stdin, written by the
user's own shell, so the user owns them); larger ones through the archive API, one request
(a shell parses a long word slowly: bash takes seconds a megabyte)."""
_LENGTH = struct.Struct(">I")


class FileEngine(ShellEngine, Protocol):
    """What the relay needs of an engine: the channel's needs, and the archive API."""

    def put_files(self, container_id: str, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None: ...


class RelayError(Exception):
    """What the relay answered instead of a result (``unavailable``: the node has no channel)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def is_root(user: str | None) -> bool:
    return user in (None, "", "root", "0") or (user or "").startswith("0:")


@final
class NodeFiles:
    """Commands and file copies in one node, as one user, over a channel (its shell runs as that
    user); the archive API for large files, then ``chown`` to the user as root."""

    def __init__(self, engine: FileEngine, container: str, user: str | None, channel: Channel) -> None:
        self.engine = engine
        self.container = container
        self.user = user or None
        self.channel = channel

    def run(self, cmd: str | bytes, stdin: bytes | None = None) -> ExecResult:
        return self.channel.run(cmd, stdin=stdin)

    def put(self, path: str, content: bytes) -> None:
        """Write ``content`` to ``path`` (mode 0600 when it is new), owned by the user.

        :raises ChannelError: when it cannot be written (the reason is the node's).
        """
        if len(content) <= INLINE_PUT:
            quoted = shlex.quote(path)
            result = self.run(f"umask 077 && base64 -d > {quoted}", stdin=base64.b64encode(content))
            if result.exit_status == 0:
                return
            if result.exit_status != 127:  # 127: no base64 in the node; the archive API has no need of it
                raise ChannelError(f"could not write {path}", detail=_text(result.stderr))
        directory, name = posixpath.split(path)
        self.engine.put_files(self.container, directory or "/", {name: (content, 0o600)})
        if not is_root(self.user):
            # The archive API writes files as root; the user must own what it uploads.
            result = self.engine.exec(self.container, ["chown", str(self.user), path], user="root")
            if result.exit_status != 0:
                raise ChannelError(f"could not give {path} to {self.user}", detail=_text(result.stderr))

    def fetch(self, path: str) -> ExecResult:
        """``path``'s content as the user reads it (``cat``: any size, any bytes)."""
        return self.run(f"cat -- {shlex.quote(path)}")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()


def send_message(sock: socket.socket, header: Mapping[str, Any], *payloads: bytes) -> None:
    data = json.dumps(header).encode()
    sock.sendall(_LENGTH.pack(len(data)) + data)
    for payload in payloads:
        if payload:
            sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the relay connection ended mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_header(sock: socket.socket) -> dict[str, Any] | None:
    """The next message's header, or None at the end of the connection."""
    first = sock.recv(_LENGTH.size)
    if not first:
        return None
    if len(first) < _LENGTH.size:
        first += _recv_exact(sock, _LENGTH.size - len(first))
    (size,) = _LENGTH.unpack(first)
    header = json.loads(_recv_exact(sock, size))
    if not isinstance(header, dict):
        raise ValueError("a relay message's header must be a JSON object")
    return header


@final
class RelayClient:
    """One connection to the relay (an Ansible connection holds one for its task)."""

    def __init__(self, address: str, *, container: str, user: str | None) -> None:
        self.container = container
        self.user = user or None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(address)
        except OSError as err:
            self._sock.close()
            raise RelayError(
                f"cannot reach the channel relay at {address}: {err}", unavailable=True
            ) from None

    def _call(self, header: dict[str, Any], payload: bytes = b"") -> ExecResult:
        header = {"container": self.container, "user": self.user, "size": len(payload), **header}
        try:
            send_message(self._sock, header, payload)
            reply = recv_header(self._sock)
            if reply is None:
                raise EOFError("the relay closed the connection")
            if "error" in reply:
                raise RelayError(str(reply["error"]), unavailable=bool(reply.get("unavailable")))
            out = _recv_exact(self._sock, int(reply["out"]))
            err = _recv_exact(self._sock, int(reply["err"]))
        except (OSError, EOFError, ValueError) as exc:
            raise RelayError(f"the channel relay failed: {exc}") from None
        return ExecResult(int(reply["status"]), out, err)

    def run(self, cmd: str, stdin: bytes | None = None) -> ExecResult:
        return self._call({"op": "run", "cmd": cmd, "stdin": stdin is not None}, stdin or b"")

    def put(self, path: str, content: bytes) -> None:
        self._call({"op": "put", "path": path}, content)

    def fetch(self, path: str) -> ExecResult:
        return self._call({"op": "fetch", "path": path})

    def close(self) -> None:
        self._sock.close()


@final
class ChannelRelay:
    """The relay's server: a thread per client connection, a channel per node and user.

    :param engine: the engine the nodes live on.
    :param containers: container id (as the inventory names it) -> how errors name the node.
    """

    def __init__(self, engine: FileEngine, containers: Mapping[str, str]) -> None:
        self.engine = engine
        self.containers = dict(containers)
        self._dir = Path(tempfile.mkdtemp(prefix="infranode-relay-"))  # 0700: this user only
        self.address = str(self._dir / "relay.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(16)
        self._lock = threading.Lock()
        self._nodes: dict[tuple[str, str | None], NodeFiles] = {}
        self._clients: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="infranode-relay", daemon=True)
        self._thread.start()

    def __enter__(self) -> ChannelRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def shells_started(self) -> int:
        return sum(n.channel.shells_started for n in self._nodes.values())

    def close(self) -> None:
        """Stop serving, end every shell, remove the socket; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._clients = self._clients, set()
            nodes, self._nodes = list(self._nodes.values()), {}
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        for node in nodes:
            node.channel.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _node(self, container: str, user: str | None) -> NodeFiles:
        if container not in self.containers:
            raise RelayError(f"container {container!r} is not a node of this run")
        key = (container, user or None)
        with self._lock:
            node = self._nodes.get(key)
            if node is None:
                where = self.containers[container] + (f" as {user}" if user else "")
                channel = Channel(self.engine, container, where=where, user=user or None)
                node = self._nodes[key] = NodeFiles(self.engine, container, user, channel)
            return node

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    client.close()
                    return
                self._clients.add(client)
            threading.Thread(
                target=self._serve, args=(client,), name="infranode-relay-client", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            while (header := recv_header(client)) is not None:
                payload = _recv_exact(client, int(header.get("size", 0)))
                try:
                    result = self._handle(header, payload)
                except ChannelUnavailable as err:
                    send_message(client, {"error": str(err), "unavailable": True})
                except (InfranodeError, RelayError, ValueError, KeyError) as err:
                    send_message(client, {"error": str(err) or type(err).__name__})
                else:
                    header_out = {
                        "status": result.exit_status,
                        "out": len(result.stdout),
                        "err": len(result.stderr),
                    }
                    send_message(client, header_out, result.stdout, result.stderr)
        except (OSError, EOFError, ValueError):
            pass  # the worker went away; its shell stays for the next one
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()

    def _handle(self, header: Mapping[str, Any], payload: bytes) -> ExecResult:
        user = header.get("user")
        node = self._node(str(header["container"]), str(user) if user else None)
        op = header.get("op")
        if op == "run":
            return node.run(str(header["cmd"]), stdin=payload if header.get("stdin") else None)
        if op == "put":
            node.put(str(header["path"]), payload)
            return ExecResult(0, b"", b"")
        if op == "fetch":
            return node.fetch(str(header["path"]))
        raise ValueError(f"unknown relay operation {op!r}")


def relay_for(engine: FileEngine, containers: Collection[tuple[str, str]]) -> ChannelRelay | None:
    """A relay over ``containers`` (id, where), or None where Unix sockets are not to be had."""
    if not hasattr(socket, "AF_UNIX") or os.name != "posix":
        return None
    return ChannelRelay(engine, dict(containers))
