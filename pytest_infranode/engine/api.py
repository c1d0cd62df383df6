"""The values and the Protocol through which the rest of the plugin reaches Docker.

Nothing here imports docker: nodes, provisioners and the testinfra backend depend on this
module, and unit tests implement :class:`EngineProtocol` with a recording fake.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol
from typing import final


@final
@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of one command run in a node."""

    exit_status: int
    stdout: bytes
    stderr: bytes


@final
@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What a node's container is made of; turned into a create request by ``containers.py``."""

    name: str
    image: str
    hostname: str
    labels: Mapping[str, str]
    command: tuple[str, ...] = ()
    init: str = "systemd"
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    """The node's own ``sysctls:``, on top of :data:`~pytest_infranode.engine.containers.DEFAULT_SYSCTLS`."""
    env: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None
    network_aliases: tuple[str, ...] = ()
    """Names the node answers to on ``network`` (its short name in ``nodes:``)."""
    ports: tuple[int, ...] = ()
    """Container TCP ports to publish on a free port of the daemon's host."""
    privileged: bool = False
    """Only when the platform asks for it (``privileged: true``); never chosen by infranode."""


@final
@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """What the session needs to know about the daemon it talks to."""

    endpoint: str
    source: str
    server_version: str
    api_version: str
    cgroup_version: str
    cgroup_driver: str
    os: str
    podman: bool = False
    rootless: bool = False
    runtime: str = "?"
    """The OCI runtime new containers get (``runc``, ``crun``): its name, not its path."""
    security: tuple[str, ...] = ()
    """The names of the security options the daemon applies (``apparmor``, ``seccomp``,
    ``selinux``, ``userns``, ``rootless``, ``cgroupns``), from its ``SecurityOptions``."""
    kernel_ipv6: bool = True
    """Whether the daemon's kernel has IPv6. Assumed, until a node's start says otherwise (a host
    booted with ``ipv6.disable=1`` has no ``/proc/sys/net/ipv6``): then the engine learns it and
    leaves the IPv6 defaults of :data:`~pytest_infranode.engine.containers.DEFAULT_SYSCTLS` out."""

    @property
    def apparmor(self) -> bool:
        return "apparmor" in self.security


@final
@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as ``list_containers`` finds it."""

    id: str
    name: str
    """Its first name without Docker's leading ``/`` (its short id when it has none)."""
    labels: Mapping[str, str]
    state: str
    """``running``, ``exited`` … ("" when the daemon does not say)."""


@final
@dataclass(frozen=True, slots=True)
class ImageInfo:
    """One image as ``list_images`` finds it."""

    id: str
    repo_tags: tuple[str, ...]
    """As the daemon lists them, ``<none>:<none>`` included."""
    labels: Mapping[str, str]
    size: int | None
    created: int
    """Seconds since the epoch (0 when the daemon does not say)."""


@final
@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """One network as ``list_networks`` finds it."""

    id: str
    name: str
    labels: Mapping[str, str]


OutputSink = Callable[[bytes], None]


class ShellStream(Protocol):
    """A long-lived process in a node with its stdin attached (``EngineProtocol.open_shell``).

    ``recv`` returns Docker's multiplexed attach stream (8-byte frame headers, then payloads);
    ``send`` writes to the process's stdin unframed.
    """

    def send(self, data: bytes) -> None: ...

    def recv(self, size: int, timeout: float | None) -> bytes: ...

    def exit_status(self) -> int | None: ...

    def close(self) -> None: ...


class CleanupEngine(Protocol):
    """What the reaper needs: the labelled containers and networks, their removal, and the
    claim on a kept node (``claims.py``) before it is taken over or removed."""

    def list_containers(self, label_filters: Sequence[str]) -> list[ContainerInfo]: ...

    def remove_container(self, container_id: str) -> None: ...

    def list_networks(self, label_filters: Sequence[str]) -> list[NetworkInfo]: ...

    def remove_network(self, network_id: str) -> bool: ...

    def create_claim(self, container_id: str, name: str, claim_labels: dict[str, str]) -> str: ...


class ShellEngine(Protocol):
    """What the exec channel needs (``channel.py``): a shell to attach to, one exec, the state."""

    def container_state(self, container_id: str) -> str: ...

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
        """Run ``argv`` in the container. With ``on_output``, the output is streamed to it and
        not kept: the result's ``stdout`` and ``stderr`` are empty."""
        ...

    def open_shell(self, container_id: str, argv: Sequence[str], *, user: str | None = None) -> ShellStream:
        """Start ``argv`` in the container (as ``user``; default, the image's) with stdin attached."""
        ...


class EngineProtocol(CleanupEngine, ShellEngine, Protocol):
    """The operations nodes, provisioners and the session need from a container engine."""

    def create_container(self, spec: ContainerSpec, options: Mapping[str, object] | None = None) -> str: ...

    def start_container(self, container_id: str) -> None: ...

    def container_address(self, container_id: str) -> str: ...

    def put_files(self, container_id: str, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None: ...

    def get_file(self, container_id: str, path: str) -> bytes: ...

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]: ...

    def logs(self, container_id: str, tail: int = 50) -> str: ...

    def kill_container(self, container_id: str) -> None: ...

    def rename_container(self, container_id: str, name: str) -> None: ...

    def list_images(self, label: str) -> list[ImageInfo]: ...
