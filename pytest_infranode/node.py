"""A node: one container made from a platform for this session, and its lifecycle.

created → booted → converged → removed (or kept). Reaches Docker only through the engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Literal
from typing import final

from pytest_infranode import labels
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import OutputSink
from pytest_infranode.errors import NodeError
from pytest_infranode.platforms import Platform

State = Literal["new", "created", "booted", "converged", "failed", "removed"]


@final
class Node:
    """One node of the session.

    :ivar name: the container's name and hostname (``infranode-<session>-<platform>``).
    :ivar platform: the :class:`~pytest_infranode.Platform` it was made from.
    :ivar container_id: the Docker container id (empty before creation).
    :ivar state: where it is in its lifecycle.
    """

    def __init__(self, engine: EngineProtocol, platform: Platform, *, session_id: str, image: str) -> None:
        self.engine = engine
        self.platform = platform
        self.session_id = session_id
        self.image = image
        self.name = f"infranode-{session_id}-{platform.name}".replace(".", "-")
        self.labels = labels.node_labels(session_id, platform.name, self.name)
        self.container_id = ""
        self.state: State = "new"
        self.converge_log = ""
        self.timings: dict[str, float] = {}
        self.image_cached: bool | None = None
        self.degraded_units = ""
        self.timed_out = False

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.state}>"

    @property
    def spec(self) -> ContainerSpec:
        p = self.platform
        return ContainerSpec(
            name=self.name,
            image=self.image,
            hostname=self.name[:63],
            labels=self.labels,
            command=p.command,
            init=p.init,
            tmpfs=p.tmpfs,
            cap_add=p.cap_add,
        )

    @property
    def where(self) -> str:
        short = self.container_id[:12] or "not created"
        return f"node {self.name} (platform {self.platform.name}, container {short})"

    @property
    def address(self) -> str:
        """The node's IP address, as the daemon's host sees it."""
        return self.engine.container_address(self.container_id) if self.container_id else ""

    def create(self, options: Mapping[str, Any] | None = None) -> None:
        """Create the container (not started). ``options`` replace the built request."""
        self.container_id = self.engine.create_container(self.spec, options)
        self.state = "created"

    def start(self, *, boot_timeout: float) -> None:
        """Start the container and wait until its init reports the machine up."""
        started = time.monotonic()
        self.engine.start_container(self.container_id)
        self._wait_booted(boot_timeout)
        self.timings["boot"] = time.monotonic() - started
        self.state = "booted"

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status = ""
        while True:
            state = self.engine.container_state(self.container_id)
            if state != "running":
                raise NodeError(
                    f"the node stopped while booting (container state: {state})",
                    where=self.where,
                    fix="read the init's log below; a systemd node needs cgroups the daemon allows",
                    detail="--- container log (tail) ---\n" + self.engine.logs(self.container_id, 30),
                )
            if self.platform.init != "systemd":
                return
            result = self.engine.exec(self.container_id, ["systemctl", "is-system-running"])
            status = result.stdout.decode(errors="replace").strip()
            if status == "running":
                return
            if status == "degraded":
                failed = self.engine.exec(
                    self.container_id, ["systemctl", "--failed", "--no-legend", "--plain"]
                )
                self.degraded_units = failed.stdout.decode(errors="replace").strip()
                return
            if time.monotonic() > deadline:
                raise NodeError(
                    f"systemd did not finish booting in {timeout:.0f} s (state: {status or 'unknown'})",
                    where=self.where,
                    fix="raise --infra-boot-timeout, or look at the units still starting: "
                    f"`docker exec {self.name} systemctl list-jobs`",
                    detail="--- container log (tail) ---\n" + self.engine.logs(self.container_id, 30),
                )
            time.sleep(0.1)

    def run(
        self, command: str, *, env: Mapping[str, str] | None = None, user: str | None = None
    ) -> ExecResult:
        """Run a shell command line in the node (``/bin/sh -c``)."""
        return self.run_argv(["/bin/sh", "-c", command], env=env, user=user)

    def run_argv(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        on_output: OutputSink | None = None,
    ) -> ExecResult:
        """Run a program with its arguments in the node; no shell is involved."""
        if not self.container_id:
            raise NodeError("the node has no container yet", where=self.where)
        return self.engine.exec(
            self.container_id, argv, env=env, workdir=workdir, user=user, on_output=on_output
        )

    def put_files(self, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        """Copy files (``name -> (content, mode)``) into ``dest_dir`` in the node."""
        self.engine.put_files(self.container_id, dest_dir, files)

    def logs(self, tail: int = 50) -> str:
        """The last lines of the container's own output (its init's log)."""
        return self.engine.logs(self.container_id, tail) if self.container_id else ""

    def remove(self) -> None:
        """Remove the container; safe to call twice."""
        if self.container_id and self.state != "removed":
            self.engine.remove_container(self.container_id)
        self.state = "removed"
