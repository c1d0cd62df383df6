"""Waiting for systemd to boot, against a real daemon: a boot that never ends, a degraded boot.

The units are copied into the created (not yet started) container, so that they run in its
first boot; the prepared debian-12 image stays as it is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from pytest_infranode.engine import Engine
from pytest_infranode.engine.containers import tar_files
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.errors import NodeError
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog

HANG = b"""[Unit]
Description=A boot job that never ends
[Service]
Type=oneshot
ExecStart=/bin/sleep 600
TimeoutStartSec=infinity
"""
BOOM = b"""[Unit]
Description=A boot job that fails
[Service]
Type=oneshot
ExecStart=/bin/false
"""


@pytest.fixture
def node(engine: Engine) -> Iterator[Node]:
    platform = Catalog().get("debian-12")
    image, _cached = engine.prepared_image(platform, lambda _msg: None)
    made = Node(engine, platform, session_id=f"boot{uuid.uuid4().hex[:12]}", image=image)
    made.create()
    try:
        yield made
    finally:
        made.remove()


def wanted_at_boot(engine: Engine, node: Node, name: str, unit: bytes) -> None:
    """Put ``unit`` in the stopped container, wanted by multi-user.target (through a drop-in)."""
    files = {
        name: (unit, 0o644),
        f"multi-user.target.d/{name}.conf": (f"[Unit]\nWants={name}\n".encode(), 0o644),
    }
    # The archive API itself: Engine.put_files first makes the directory with an exec, which
    # needs a running container.
    assert engine._client.api.put_archive(node.container_id, "/etc/systemd/system", tar_files(files))


def test_a_boot_that_never_ends_fails_at_the_timeout_with_the_state(engine: Engine, node: Node) -> None:
    wanted_at_boot(engine, node, "hang.service", HANG)
    started = time.monotonic()
    with pytest.raises(NodeError) as excinfo:
        node.start(boot_timeout=3)
    took = time.monotonic() - started
    text = str(excinfo.value)
    assert "systemd did not finish booting in 3 s (state: starting)" in text, text
    assert f"docker exec {node.name} systemctl list-jobs" in text
    assert took >= 3  # it waited the whole timeout: the state was asked for until then
    jobs = node.run_argv(["systemctl", "list-jobs", "--no-legend"]).stdout.decode()
    assert "hang.service" in jobs  # the node is still there for a look until it is removed


def test_a_degraded_boot_is_up_and_warns_with_the_failed_unit(engine: Engine, node: Node) -> None:
    wanted_at_boot(engine, node, "boom.service", BOOM)
    with pytest.warns(InfranodeWarning, match=r"booted degraded; failed units:\n.*boom\.service"):
        node.start(boot_timeout=60)
    assert node.state == "booted"
    assert "boom.service" in node.degraded_units
