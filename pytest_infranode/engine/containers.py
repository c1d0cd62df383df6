"""Request bodies for containers, built by pure functions (unit-tested without a daemon)."""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Mapping
from typing import Any
from typing import Literal

from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo

# The Debian/Ubuntu/RHEL systemd images stop cleanly on this signal (systemd's "halt").
SYSTEMD_STOP_SIGNAL = "SIGRTMIN+3"


# Kernel settings every node gets, each namespaced (it changes the node, never the host), with
# its reason. Docker starts a container with IPv6 off on every interface; a real server has
# ``::1`` on its loopback, and daemons whose default configuration listens there (``bind():
# Cannot assign requested address``) fail without it. Only ``lo``: ``all`` would also give eth0
# an IPv6 link-local address on the daemon's bridge (measured, Docker 20.10), which a node with
# no IPv6 network should not have. A node's ``sysctls:`` comes on top.
DEFAULT_SYSCTLS: Mapping[str, str] = {
    "net.ipv6.conf.lo.disable_ipv6": "0",  # ::1 on the loopback, as on a real server
}


# The /proc/sys file runc (or crun) could not open while it applied a container's sysctls, as it
# says when the kernel has no such setting (runc: `open /proc/sys/net/ipv6/conf/lo/disable_ipv6:
# no such file or directory`; a quoted path and capitals are accepted too).
_MISSING_SYSCTL = re.compile(
    r"/proc/sys/(net/ipv6/conf/(?:lo|all|default)/[\w.-]+)`?: no such file", re.IGNORECASE
)


def default_sysctls(daemon: DaemonInfo) -> dict[str, str]:
    """The :data:`DEFAULT_SYSCTLS` a node of ``daemon`` gets: the IPv6 ones only where its kernel
    has IPv6. Pure."""
    return {k: v for k, v in DEFAULT_SYSCTLS.items() if daemon.kernel_ipv6 or not k.startswith("net.ipv6.")}


def missing_ipv6_sysctl(message: str) -> str | None:
    """The IPv6 setting a container's start could not make because the kernel has no IPv6
    (``net.ipv6.conf.lo.disable_ipv6``), from the daemon's message; None for any other failure.
    Only ``lo``, ``all`` and ``default``: they exist wherever the kernel has IPv6. Pure."""
    found = _MISSING_SYSCTL.search(message)
    return found.group(1).replace("/", ".") if found else None


SystemdCgroupMode = Literal["host-rw", "private-rw", "podman-native"]

# Docker mounts a private cgroup namespace's /sys/fs/cgroup read-only for every container that is
# not privileged; systemd must create init.scope and its slices there. The node's PID 1 is this
# script, which then becomes the platform's init:
#
# 1. it remounts the namespace's own cgroup tree (the container's subtree, nothing above it)
#    read-write. Rootless Docker refuses that remount but allows a new cgroup2 mount of the same
#    namespace (measured on the lab's rootless dockerd), which is then moved over the read-only
#    one. If neither is allowed it says so in the log;
# 2. it moves itself into ``init.scope`` (where systemd puts PID 1 anyway, and which systemd
#    recognises as its own at start) and delegates every controller the node was given to the
#    root's children. cgroup v2 lets a cgroup hand controllers down only while it holds no
#    process, and ``docker exec`` puts each process it starts into that root: an exec during boot
#    (the plugin's boot wait is one) used to leave ``cgroup.subtree_control`` empty, so units'
#    ``MemoryMax=`` and the like were never applied. Once the root has controllers, runc puts
#    exec'd processes into PID 1's cgroup instead (rootless runc leaves them in the daemon's own
#    cgroup, outside the node), and the root stays free of them.
CGROUP_SETUP = r"""cg=/sys/fs/cgroup
say() { echo "infranode: $*" >&2; }
fresh=/run/infranode-cgroup
mount -o remount,rw "$cg" 2>/dev/null || {
  mkdir -p "$fresh" && mount -t cgroup2 cgroup2 "$fresh" 2>/dev/null && mount --move "$fresh" "$cg"
} 2>/dev/null ||
  say "$cg stays read-only (neither a remount nor a new cgroup2 mount was allowed):" \
    "systemd cannot make its cgroups"
rmdir "$fresh" 2>/dev/null
if [ -w "$cg/cgroup.subtree_control" ]; then
  { mkdir -p "$cg/init.scope" && echo $$ > "$cg/init.scope/cgroup.procs"; } 2>/dev/null ||
    say "PID 1 cannot leave the root cgroup: units get no resource limits"
  for c in $(cat "$cg/cgroup.controllers"); do
    echo "+$c" 2>/dev/null > "$cg/cgroup.subtree_control" || say "the $c controller cannot be handed to units"
  done
fi
exec "$@"
"""


def systemd_cgroup_mode(daemon: DaemonInfo) -> SystemdCgroupMode:
    """How a systemd PID 1 gets the writable cgroup tree it needs, on this daemon. Pure.

    Measured on real daemons (docs/systemd-nodes.md has the matrices):

    - Docker, cgroup v1 (this project's machines, Docker 20.10): ``host-rw``, the host's cgroup
      namespace with /sys/fs/cgroup bound read-write. Docker's default mounts leave the
      controllers read-only and systemd exits ("Failed to allocate manager object"); a private
      namespace fails the same way.
    - Docker, cgroup v2 (GitHub's ubuntu-22.04/24.04 runners; measured on Docker 20.10 with
      AppArmor in the project's QEMU lab): ``private-rw``, a private cgroup namespace whose
      read-only cgroup2 mount PID 1 remounts read-write before it becomes systemd
      (:data:`CGROUP_SETUP`; CAP_SYS_ADMIN, which systemd nodes have anyway, allows it). The
      node sees and may write only its own subtree. The host namespace with a rw bind boots too,
      but hands the node the host's whole cgroup tree; without the remount systemd exits with
      "Failed to create /init.scope control group: Read-only file system".
    - Rootless Docker: ``private-rw`` on v2, like rootful, except that the remount is refused and
      PID 1 mounts a fresh cgroup2 of its namespace instead (:data:`CGROUP_SETUP`); proven on the
      lab's rootless Docker 20.10. On v1 (``host-rw``) a user owns no cgroup tree to give a node:
      not expected to boot, not measured (the doctor says so).
    - Podman (rootful or rootless, v1 or v2): ``podman-native``. Podman recognises an init
      command and mounts /run, /tmp and a writable cgroup itself (``--systemd=true``).
    """
    if daemon.podman:
        return "podman-native"
    return "private-rw" if daemon.cgroup_version == "2" else "host-rw"


def systemd_security_opt(daemon: DaemonInfo) -> list[str]:
    """Security options a systemd node needs on this daemon. Pure.

    Docker's default AppArmor profile (``docker-default``) denies mount(2): the cgroup remount
    above fails, and so does every mount namespace systemd sets up to sandbox a unit
    (``PrivateTmp=``, ``ProtectSystem=``: "Failed to set up mount namespacing: Permission
    denied"), and Debian 13's systemd does not boot at all. A profile of our own cannot be loaded
    into a remote daemon's kernel, so a systemd node on an AppArmor daemon runs unconfined by
    AppArmor; seccomp keeps Docker's default profile, and no other option is changed. Podman's
    own systemd handling is left as it is.
    """
    return ["apparmor=unconfined"] if daemon.apparmor and not daemon.podman else []


def create_kwargs(spec: ContainerSpec, daemon: DaemonInfo) -> dict[str, Any]:
    """Keyword arguments for ``DockerClient.containers.create`` for one node.

    Never privileged unless the platform asks for it (``privileged: true``). Every node gets
    :func:`default_sysctls` (``::1`` on its loopback, where the kernel has IPv6) and its own
    ``sysctls:``. A systemd node gets
    the platform's capabilities (CAP_SYS_ADMIN for the built-ins), tmpfs on /run, /run/lock and
    /tmp, the cgroup set-up chosen by :func:`systemd_cgroup_mode`, the security options of
    :func:`systemd_security_opt` (AppArmor daemons only), and a terminal: without one
    Docker gives PID 1 no /dev/console and systemd's own log (the one that says why it did not
    boot) is lost.
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
        "sysctls": {**default_sysctls(daemon), **spec.sysctls},
    }
    if spec.privileged:
        kwargs["privileged"] = True
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
        kwargs["tty"] = True
        kwargs["environment"].setdefault("container", "podman" if daemon.podman else "docker")
        mode = systemd_cgroup_mode(daemon)
        if mode == "podman-native":
            # Podman mounts /run, /tmp and the cgroup tree for an init command by itself.
            kwargs["tmpfs"] = {}
        elif mode == "private-rw":
            kwargs["cgroupns"] = "private"
            kwargs["entrypoint"] = ["/bin/sh", "-c", CGROUP_SETUP, "infranode-init"]
            kwargs["command"] = list(spec.command) or ["/sbin/init"]
        else:
            kwargs["cgroupns"] = "host"
            kwargs["volumes"] = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
        if security_opt := systemd_security_opt(daemon):
            kwargs["security_opt"] = security_opt
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
