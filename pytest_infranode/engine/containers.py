"""Request bodies for containers, built by pure functions (unit-tested without a daemon)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping
from typing import Any

from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo

# The Debian/Ubuntu/RHEL systemd images stop cleanly on this signal (systemd's "halt").
SYSTEMD_STOP_SIGNAL = "SIGRTMIN+3"


def create_kwargs(spec: ContainerSpec, daemon: DaemonInfo) -> dict[str, Any]:
    """Keyword arguments for ``DockerClient.containers.create`` for one node.

    Never privileged. A systemd node gets CAP_SYS_ADMIN, tmpfs on /run, /run/lock and /tmp, and
    a writable view of the cgroup tree in the host's cgroup namespace: on cgroup v1 systemd needs
    its controllers writable; on v2 Docker's default is a private namespace with a read-only
    /sys/fs/cgroup, where systemd fails with "Failed to create /init.scope control group".
    """
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "hostname": spec.hostname,
        "labels": dict(spec.labels),
        "detach": True,
        "tty": False,
        "stdin_open": False,
        "environment": dict(spec.env),
        "cap_add": list(spec.cap_add),
        "tmpfs": dict(spec.tmpfs),
    }
    if spec.command:
        kwargs["command"] = list(spec.command)
    if spec.network:
        kwargs["network"] = spec.network
        if spec.network_aliases:
            kwargs["networking_config"] = {spec.network: {"Aliases": list(spec.network_aliases)}}
    if spec.ports:
        # None: the daemon picks a free host port; published_ports() reads it back.
        kwargs["ports"] = {f"{port}/tcp": None for port in spec.ports}
    if spec.init == "systemd":
        kwargs["stop_signal"] = SYSTEMD_STOP_SIGNAL
        kwargs["environment"].setdefault("container", "docker")
        if daemon.podman:
            # Podman sets up /sys/fs/cgroup and the tmpfs mounts for systemd by itself.
            kwargs["tmpfs"] = {}
        else:
            kwargs["cgroupns"] = "host"
            kwargs["volumes"] = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
    return kwargs


def tar_files(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A tar archive holding ``name -> (content, mode)``, for the Docker archive API."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = int(now)
                    tar.addfile(info)
            content, mode = files[name]
            info = tarfile.TarInfo(name.strip("/"))
            info.size = len(content)
            info.mode = mode
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def runner_host(endpoint: str) -> str:
    """The address at which the test runner reaches ports the daemon publishes.

    A local socket (``unix://``, ``npipe://``) publishes on this machine: ``127.0.0.1``. A remote
    daemon (``tcp://host:2376``, ``ssh://user@host``) publishes on its own host.
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme in ("unix", "npipe", "fd"):
        return "127.0.0.1"
    hostport = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if hostport.startswith("["):  # [::1]:2376
        return hostport[1:].split("]", 1)[0]
    host = hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport
    return host if host and host not in ("0.0.0.0", "localhost") else "127.0.0.1"


def parse_port_bindings(ports: Mapping[str, Any] | None, host: str) -> dict[int, tuple[str, int]]:
    """``NetworkSettings.Ports`` of an inspected container → ``{container port: (host, port)}``."""
    found: dict[int, tuple[str, int]] = {}
    for key, bindings in (ports or {}).items():
        number, _, proto = str(key).partition("/")
        if proto not in ("", "tcp") or not bindings or not number.isdigit():
            continue
        for binding in bindings:
            host_port = str(binding.get("HostPort", ""))
            if host_port.isdigit():
                found[int(number)] = (host, int(host_port))
                break
    return found
