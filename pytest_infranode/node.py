"""A node: one container made from a platform for this session, and its lifecycle.

created → booted → converged → removed (or kept). Reaches Docker only through the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Literal
from typing import final

from pytest_infranode import labels
from pytest_infranode import sandbox
from pytest_infranode import units
from pytest_infranode.boot import BootWait
from pytest_infranode.channel import Channel
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import OutputSink
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import NodeError
from pytest_infranode.platforms import Platform

State = Literal["new", "created", "booted", "converged", "failed", "removed"]


def container_name(session_id: str, platform: str, short_name: str = "") -> str:
    """``infranode-<session>-<platform>[-<node>]``: the container name of a node."""
    name = f"infranode-{session_id}-{platform}" + (f"-{short_name}" if short_name else "")
    return name.replace(".", "-")


@final
class Node:
    """One node of the session.

    :ivar name: the container's name and hostname (``infranode-<session>-<platform>``).
    :ivar platform: the :class:`~pytest_infranode.Platform` it was made from.
    :ivar container_id: the Docker container id (empty before creation).
    :ivar state: where it is in its lifecycle.
    """

    def __init__(
        self,
        engine: EngineProtocol,
        platform: Platform,
        *,
        session_id: str,
        image: str,
        short_name: str = "",
        network: str | None = None,
        env: Mapping[str, str] | None = None,
        ports: Sequence[int] = (),
        cap_add: Sequence[str] = (),
        sysctls: Mapping[str, str] | None = None,
        groups: Sequence[str] = (),
        owner: str | None = None,
        image_cached: bool | None = None,
        hostname: str = "",
    ) -> None:
        self.engine = engine
        self.platform = platform
        self.session_id = session_id
        self.image = image
        self.short_name = short_name
        """The node's name in ``nodes:`` (``web``); "" for the single node of a platform."""
        self.network = network
        self.env: dict[str, str] = dict(env or {})
        self.ports: tuple[int, ...] = tuple(ports)
        self.extra_caps: tuple[str, ...] = tuple(cap_add)
        self.sysctls: dict[str, str] = dict(sysctls or {})
        self.groups: tuple[str, ...] = tuple(groups)
        self.hostname = hostname
        """Its ``hostname:`` when that is not its short name ("" otherwise)."""
        self.name = container_name(session_id, platform.name, short_name)
        self.labels = labels.node_labels(session_id, platform.name, self.name, owner)
        self.outcome = ""
        """Once the session is done with it: ``removed`` or ``kept``."""
        self.log_tail = ""
        """The container log's tail, saved before a failed node is removed."""
        self.container_id = ""
        self.state: State = "new"
        self.converge_log = ""
        self.timings: dict[str, float] = {}
        self.image_cached = image_cached
        """Whether the prepared image was found (True) or made (False); None: not known."""
        self.converge_cache = ""
        """With ``--infra-cache=converge``: ``hit``, ``miss`` or ``off`` (not cacheable)."""
        self.reused = False
        """Taken over from a kept node of an earlier session (``--infra-reuse``)."""
        self.bare = False
        """Ready without a converge: no provisioner configured (the summary says ``none``)."""
        self.degraded_units = ""
        #: whether systemd can sandbox units here (:mod:`pytest_infranode.sandbox`), once booted
        self.sandbox: sandbox.Verdict = "unknown"
        self.timed_out = False
        self.converge_round = 0
        """1 during the first converge, 2 during the idempotence check's (see :meth:`begin_converge`)."""
        self.channel_shell = "/bin/sh"
        """The shell the exec channel starts; "" turns the channel off (one exec per command)."""
        self._channel: Channel | None = None
        self._channel_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.state}>"

    @property
    def spec(self) -> ContainerSpec:
        p = self.platform
        return ContainerSpec(
            name=self.name,
            image=self.image,
            hostname=(self.hostname or self.short_name or self.name)[:63],
            labels=self.labels,
            command=p.command,
            init=p.init,
            tmpfs=p.tmpfs,
            cap_add=tuple(dict.fromkeys((*p.cap_add, *self.extra_caps))),
            sysctls=self.sysctls,
            env={**p.env, **self.env},
            network=self.network,
            network_aliases=tuple(dict.fromkeys(filter(None, (self.short_name, self.hostname))))
            if self.short_name and self.network
            else (),
            ports=self.ports,
            privileged=p.privileged,
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
        self.outcome = ""  # a container made again after remove() is not removed

    def start(self, *, boot_timeout: float) -> None:
        """Start the container and wait until its init reports the machine up."""
        started = time.monotonic()
        self.engine.start_container(self.container_id)
        wait = BootWait(self.engine, self.container_id, self.platform, name=self.name, where=self.where)
        booted = wait.wait(boot_timeout)
        self.sandbox, self.degraded_units = booted.sandbox, booted.degraded_units
        self.timings["boot"] = time.monotonic() - started
        self.state = "booted"

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

    def get_file(self, path: str) -> bytes:
        """The content of the file ``path`` in the node (copied out through the archive API)."""
        if not self.container_id:
            raise NodeError("the node has no container yet", where=self.where)
        return self.engine.get_file(self.container_id, path)

    @property
    def published_ports(self) -> dict[int, tuple[str, int]]:
        """``{container port: (host, port)}`` the test runner can connect to, for ``ports:``."""
        if not self.container_id or not self.ports:
            return {}
        return self.engine.published_ports(self.container_id)

    def port(self, container_port: int) -> tuple[str, int]:
        """``(host, port)`` where the runner reaches the node's ``container_port``."""
        found = self.published_ports.get(container_port)
        if found is None:
            raise NodeError(
                f"port {container_port} is not published",
                where=self.where,
                fix=f"add it to `ports:` of node {self.short_name or self.name} in infranode.yaml",
            )
        return found

    def logs(self, tail: int = 50) -> str:
        """The last lines of the container's own output (its init's log)."""
        return self.engine.logs(self.container_id, tail) if self.container_id else ""

    @property
    def channel(self) -> Channel | None:
        """The node's exec channel, made on first use; None without a container or when off."""
        if not self.container_id or not self.channel_shell or self.state == "removed":
            return None
        with self._channel_lock:
            if self._channel is None or self._channel.container_id != self.container_id:
                self._channel = Channel(
                    self.engine, self.container_id, where=self.where, shell=self.channel_shell
                )
            return self._channel

    def close(self) -> None:
        """End the node's exec channel (the container stays); safe to call twice."""
        if self._channel is not None:
            self._channel.close()

    # The lifecycle below is the node's own: the session asks, the node changes its state.
    def record_time(self, step: str, seconds: float) -> None:
        """How long ``step`` (``image``, ``converge``, ``ready`` …) took, for the summary."""
        self.timings[step] = seconds

    def label_converge_key(self, key: str) -> None:
        """Carry the key of this node's converge, so that a later session can reuse it."""
        self.labels[labels.CONVERGE] = key

    def use_converge_cache(self, verdict: Literal["hit", "miss", "off"], image: str = "") -> None:
        """The converge cache's verdict; on a hit the node starts from the converged ``image``."""
        if self.state != "new":
            raise NodeError(f"the converge cache is chosen before the container is made, not {self.state}")
        self.converge_cache = verdict
        if image:
            self.image = image

    def take_over(self, container_id: str, name: str, container_labels: Mapping[str, str]) -> None:
        """Become the kept, converged container ``name`` of an earlier session (``--infra-reuse``),
        whose labels (that session's) it keeps: Docker cannot change them."""
        self.container_id = container_id
        self.name = name
        self.labels = dict(container_labels)
        self.reused = True
        self.state = "converged"

    def attach(self, container_id: str, *, converge_log: str, converge_cache: str = "") -> None:
        """Become the converged container another process of this session made (pytest-xdist)."""
        self.container_id = container_id
        self.converge_log = converge_log
        self.converge_cache = converge_cache
        self.state = "converged"

    def begin_converge(self) -> None:
        """A converge of the node starts: the first, or the idempotence check's second."""
        self.converge_round += 1

    def converged(self, log_path: str = "", *, bare: bool = False) -> None:
        """The converge (or the converge cache) made the booted node the machine under test;
        ``bare``: nothing ran, the node is as its platform made it (no provisioner configured)."""
        if self.state != "booted":
            raise NodeError(f"only a booted node can be converged, not a {self.state} one", where=self.where)
        self.bare = bare
        if log_path:
            self.converge_log = log_path
        self.state = "converged"

    def unit_report(self) -> str | None:
        """Why this node's failed units, and the enabled services a condition skipped, do not
        run, each with the setting that fixes it (:mod:`pytest_infranode.units`); None when all
        run, or the node has no systemd."""
        if self.platform.init != "systemd" or not self.container_id:
            return None
        facts = self.run_argv(["/bin/sh", "-c", units.FACTS]).stdout.decode(errors="replace")
        return units.report(units.parse(facts), f"{self.name} ({self.platform.name})")

    def failed(self, log_path: str = "") -> None:
        """Its converge, idempotence check or side effect failed: the container log's tail is
        saved now, before the node may be removed."""
        if log_path:
            self.converge_log = log_path
        self.state = "failed"
        self.log_tail = self.logs(30)

    def stop_converge(self) -> None:
        """The converge ran past its timeout: kill the container, which ends any provisioner."""
        self.timed_out = True
        if self.container_id:
            self.engine.kill_container(self.container_id)

    def keep(self, suffix: str) -> str | None:
        """Leave the container running for a look, renamed ``<name><suffix>`` so that automatic
        sweeps spare it. Returns the problem as a line for the report if the rename failed."""
        self.close()  # its exec channel: the container stays, the attached socket must not
        problem = None
        if self.container_id and not self.name.endswith(suffix):
            try:
                self.engine.rename_container(self.container_id, self.name + suffix)
                self.name += suffix
            except InfranodeError as exc:
                problem = f"{self.name}: could not mark as kept: {exc.what}"
        self.outcome = "kept"
        return problem

    def remove(self) -> None:
        """Remove the container; safe to call twice."""
        self.close()
        if self.container_id and self.state != "removed":
            self.engine.remove_container(self.container_id)
        self.state = "removed"
        self.outcome = "removed"
