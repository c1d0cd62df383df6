"""The directory through which xdist workers agree on their nodes. No daemon."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from pytest_infranode.sharing import SharedDir

HOLD = """
import sys, time
from pathlib import Path
from pytest_infranode.sharing import SharedDir
shared = SharedDir(Path(sys.argv[1]))
with shared.locked("node-debian-12/web"):
    Path(sys.argv[2]).write_text("held")
    time.sleep(float(sys.argv[3]))
"""


def test_records_round_trip_with_unsafe_keys(tmp_path: Path) -> None:
    shared = SharedDir(tmp_path)
    assert shared.read("node-debian-12/web") is None
    shared.write("node-debian-12/web", {"container_id": "abc", "timings": {"ready": 1.5}})
    shared.write("node-debian-13/", {"container_id": "def"})
    assert shared.read("node-debian-12/web") == {"container_id": "abc", "timings": {"ready": 1.5}}
    assert {r["container_id"] for r in shared.records("node-")} == {"abc", "def"}
    assert shared.records("network-") == []
    assert all("/" not in p.name for p in tmp_path.iterdir())


def test_flags(tmp_path: Path) -> None:
    shared = SharedDir(tmp_path)
    shared.mark("failed-debian-12")
    shared.mark("failed-debian-12")
    shared.mark("failed-rocky-9.4")
    assert shared.flags("failed-") == {"debian-12", "rocky-9.4"}


def test_lock_excludes_another_process_and_is_freed_when_it_dies(tmp_path: Path) -> None:
    shared = SharedDir(tmp_path / "s")
    shared.path.mkdir()
    held = tmp_path / "held"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(shared.path), str(held), "30"])
    try:
        deadline = time.monotonic() + 30
        while not held.exists():
            assert time.monotonic() < deadline, "the helper process never took the lock"
            time.sleep(0.05)
        # Another process holds it: a non-blocking attempt from here must fail.
        with open(shared._file("node-debian-12/web", ".lock"), "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the lock was free while another process held it")
            except BlockingIOError:
                pass
        proc.kill()  # a worker that dies: the kernel frees its lock
        proc.wait()
        with shared.locked("node-debian-12/web"):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_create_is_private_and_remove_cleans_up() -> None:
    shared = SharedDir.create("abc123")
    try:
        assert shared.path.is_dir()
        assert (shared.path.stat().st_mode & 0o777) == 0o700
        assert shared.path.name.startswith("infranode-abc123-")
        assert os.access(shared.path, os.W_OK)
    finally:
        shared.remove()
    assert not shared.path.exists()


def test_the_controller_and_its_workers_share_one_identity_and_directory() -> None:
    from pytest_infranode.sharing import as_controller
    from pytest_infranode.sharing import as_worker
    from pytest_infranode.sharing import worker_input
    from pytest_infranode.targets import Identity

    controller, shared = as_controller(Identity("0123456789abcdef", "me"))
    try:
        assert (controller.role, controller.shared) == ("controller", shared.path)
        worker, joined = as_worker(worker_input(controller))
        assert (worker.session_id, worker.owner, worker.role) == ("0123456789abcdef", "me", "worker")
        assert worker.shared == joined.path == shared.path
    finally:
        shared.remove()


def test_nodes_converged_in_one_run_are_made_once_for_every_worker(tmp_path: Path) -> None:
    """The first worker makes the whole run's nodes and writes each one's record; another worker
    attaches to each, or gets its error."""
    from pytest_infranode.errors import ConvergeError
    from pytest_infranode.errors import InfranodeError
    from pytest_infranode.node import Node
    from pytest_infranode.platforms import BUILTIN_PLATFORMS
    from pytest_infranode.sharing import NodeRecord
    from pytest_infranode.sharing import SharedNodes
    from tests.unit.fakes import FakeEngine

    d12 = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")
    db = Node(FakeEngine(), d12, session_id="0123456789abcdef", image="img", short_name="db")
    db.container_id = "id-db"
    keys = ["debian-12/db", "debian-12/web"]
    err = ConvergeError("converge of web failed", where="here")
    runs: list[str] = []
    afresh: list[str] = []

    def make() -> dict[str, Node | InfranodeError]:
        runs.append("run")
        return {"debian-12/db": db, "debian-12/web": err}

    def made(key: str, node: Node) -> NodeRecord:
        return NodeRecord(
            platform="debian-12", node=node.short_name, worker=1, container_id=node.container_id
        )

    def failed(key: str, error: InfranodeError) -> NodeRecord:
        return NodeRecord(platform="debian-12", node="web", worker=1, error=(error.what, error.where, "", ""))

    attached: list[str] = []

    def attach(key: str, record: NodeRecord) -> Node:
        attached.append(record.container_id)
        return db

    for _worker in range(2):
        outcome = SharedNodes(SharedDir(tmp_path)).group(
            keys, make=make, attach=attach, failed=failed, made=made, start_afresh=afresh.append
        )
        assert outcome["debian-12/db"] is db
        web = outcome["debian-12/web"]
        assert isinstance(web, InfranodeError)
        assert web.what == "converge of web failed"
    assert runs == ["run"]  # one run, by the first worker
    assert afresh == keys
    assert attached == ["id-db"]  # the second worker attached to db, and got web's error
