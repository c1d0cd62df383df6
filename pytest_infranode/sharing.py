"""Nodes shared by the processes of one session (pytest-xdist workers): file locks and records.

The controller makes a private directory and hands its path to the workers. For each node (and
each network), the first worker that needs it takes a lock file, makes it, and writes a record
(a small JSON file: the container id, timings, or the error). The others wait on the lock, read
the record, and attach to the same container. ``fcntl.flock`` locks are released by the kernel
when a worker dies, so a crashed worker never blocks the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import final

from pytest_infranode.errors import InfranodeError
from pytest_infranode.node import Node
from pytest_infranode.targets import Identity

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


@final
@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What the worker that made a node tells the other processes of the session about it."""

    platform: str
    node: str
    """The short name in ``nodes:``; "" for the single node of a platform."""
    worker: int
    container_id: str = ""
    image: str = ""
    cached: bool | None = None
    converge_cache: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    converge_log: str = ""
    idempotence: str | None = None
    error: tuple[str, str, str, str] | None = None
    """``(what, where, fix, detail)`` of the error that node failed with."""

    def to_json(self) -> dict[str, Any]:
        base: dict[str, Any] = {"platform": self.platform, "node": self.node, "worker": self.worker}
        if self.error is not None:
            return {"error": list(self.error), "idempotence": self.idempotence, **base}
        return {
            **base,
            "container_id": self.container_id,
            "image": self.image,
            "cached": self.cached,
            "converge_cache": self.converge_cache,
            "timings": dict(self.timings),
            "converge_log": self.converge_log,
            "idempotence": self.idempotence,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeRecord:
        error = data.get("error")
        cached = data.get("cached")
        return cls(
            platform=str(data.get("platform") or ""),
            node=str(data.get("node") or ""),
            worker=int(data.get("worker") or 0),
            container_id=str(data.get("container_id") or ""),
            image=str(data.get("image") or ""),
            cached=cached if isinstance(cached, bool) else None,
            converge_cache=str(data.get("converge_cache") or ""),
            timings={str(k): float(v) for k, v in (data.get("timings") or {}).items()},
            converge_log=str(data.get("converge_log") or ""),
            idempotence=str(data["idempotence"]) if data.get("idempotence") else None,
            error=(str(error[0]), str(error[1]), str(error[2]), str(error[3]))
            if isinstance(error, list) and len(error) == 4
            else None,
        )

    def raise_error(self) -> None:
        if self.error is not None:
            what, where, fix, detail = self.error
            raise InfranodeError(what, where=where, fix=fix, detail=detail)


@final
class SharedNodes:
    """One node per platform and name for all the workers of an xdist session.

    For each node the first worker that needs it makes it under the node's file lock and writes
    its :class:`NodeRecord`; the others wait on the lock, then attach to the same container (or
    fail with the same error).
    """

    def __init__(self, shared: SharedDir) -> None:
        self.shared = shared

    def node(
        self,
        key: str,
        make: Callable[[], Node],
        attach: Callable[[NodeRecord], Node],
        failed: Callable[[InfranodeError], NodeRecord],
        made: Callable[[Node], NodeRecord],
        start_afresh: Callable[[], None],
    ) -> Node:
        """The node of ``key``: made by this worker, or attached to the one another one made."""
        with self.shared.locked(f"node-{key}"):
            data = self.shared.read(f"node-{key}")
            if data is None:
                start_afresh()  # a worker that died making this node left its container
                try:
                    node = make()
                except InfranodeError as err:
                    self.shared.write(f"node-{key}", failed(err).to_json())
                    raise
                self.shared.write(f"node-{key}", made(node).to_json())
                return node
        record = NodeRecord.from_json(data)
        record.raise_error()
        return attach(record)

    def group(
        self,
        keys: list[str],
        make: Callable[[], dict[str, Node | InfranodeError]],
        attach: Callable[[str, NodeRecord], Node],
        failed: Callable[[str, InfranodeError], NodeRecord],
        made: Callable[[str, Node], NodeRecord],
        start_afresh: Callable[[str], None],
    ) -> dict[str, Node | InfranodeError]:
        """The nodes of ``keys``, converged in one run: made together by the first worker that
        needs one of them, under one file lock, each with its record; the others attach to
        each (or get its error)."""
        with self.shared.locked(f"group-{keys[0]}"):
            found = {key: self.shared.read(f"node-{key}") for key in keys}
            if any(data is None for data in found.values()):
                for key in keys:
                    start_afresh(key)
                outcome = make()
                for key in keys:
                    result = outcome[key]
                    record = made(key, result) if isinstance(result, Node) else failed(key, result)
                    self.shared.write(f"node-{key}", record.to_json())
                return outcome
        attached: dict[str, Node | InfranodeError] = {}
        for key, data in found.items():
            assert data is not None
            record = NodeRecord.from_json(data)
            try:
                record.raise_error()
            except InfranodeError as err:
                attached[key] = err
                continue
            attached[key] = attach(key, record)
        return attached

    def network(self, platform_name: str, create: Callable[[], str]) -> str:
        """The id of the network the nodes of ``platform_name`` share, made by the first worker."""
        with self.shared.locked(f"network-{platform_name}"):
            record = self.shared.read(f"network-{platform_name}")
            if record is None:
                record = {"id": create()}
                self.shared.write(f"network-{platform_name}", record)
        return str(record["id"])

    def mark_failed(self, platform_name: str) -> None:
        """A test of the platform failed in this worker: the controller's keep policy decides."""
        self.shared.mark(f"failed-{platform_name}")

    def failed_platforms(self) -> set[str]:
        return self.shared.flags("failed-")

    def records(self) -> list[NodeRecord]:
        """Every node the workers made (or failed to make), oldest first."""
        return [NodeRecord.from_json(r) for r in self.shared.records("node-")]


# The roles of the processes: the controller makes the shared directory, its workers join it.
def as_controller(identity: Identity) -> tuple[Identity, SharedDir]:
    """This process hands tests to xdist workers: its role, and the directory they share (made now)."""
    shared = SharedDir.create(identity.session_id)
    return dataclasses.replace(identity, role="controller", shared=shared.path), shared


def worker_input(identity: Identity) -> dict[str, str]:
    """What the controller ``identity`` gives each worker (``workerinput``)."""
    return {
        "infranode_session": identity.session_id,
        "infranode_shared": str(identity.shared),
        "infranode_owner": identity.owner,
    }


def as_worker(workerinput: Mapping[str, Any]) -> tuple[Identity, SharedDir]:
    """This process is a worker of the controller that sent ``workerinput``: same session id,
    same owner, same shared directory."""
    shared = SharedDir(Path(workerinput["infranode_shared"]))
    identity = Identity(
        session_id=str(workerinput["infranode_session"]),
        owner=str(workerinput["infranode_owner"]),
        role="worker",
        shared=shared.path,
    )
    return identity, shared
