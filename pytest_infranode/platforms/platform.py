"""The ``Platform`` value: a named OS target, and how its base image is bootstrapped. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Literal
from typing import final

Init = Literal["systemd", "openrc", "none"]

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""Platform names become part of container names, hostnames and test ids."""

# Docker's own --tmpfs default is noexec; a whole machine needs exec on /run and /tmp
# (systemd generators, package scripts).
SYSTEMD_TMPFS: Mapping[str, str] = {
    "/run": "rw,nosuid,nodev,exec,mode=755",
    "/run/lock": "rw,nosuid,nodev,noexec,mode=1777",
    # Debian 13 (systemd 257) enables tmp.mount; with a tmpfs already there it has nothing to do.
    "/tmp": "rw,nosuid,nodev,exec,mode=1777",
}

# The capabilities a systemd node gets beyond Docker's default set, each with its reason; each
# acts only inside the node's own namespaces (docs/systemd-nodes.md, "Capabilities"). Measured on
# Debian 12 and 13 nodes (Docker 20.10, cgroup v1). Grants that reach the host (SYS_TIME: the
# host's clock; AUDIT_CONTROL: the kernel's audit; SYS_MODULE: kernel modules) are never here:
# a node's `capabilities:` opts into them, and the boot's diagnosis names them as dangerous.
SYSTEMD_CAP_REASONS: Mapping[str, str] = {
    # systemd mounts (tmp.mount, private /tmp of sandboxed units) and keeps CAP_SYS_ADMIN for
    # units that drop privileges (Debian 13: "Failed to keep CAP_SYS_ADMIN" without it).
    "SYS_ADMIN": "systemd's mounts and the sandboxing of units (PrivateTmp=, ProtectSystem=)",
    # nftables' `flush ruleset` ("Operation not permitted" without it), iptables, `ip link/route`:
    # the node's own network namespace, never the host's.
    "NET_ADMIN": "firewall rules, interfaces and routes of the node's own network namespace",
}
# Not a default, though safe (ptrace reaches only the node's own PID namespace): SYS_PTRACE, which
# systemd needs for ProtectProc=invisible inside PrivateUsers= (redis-server on Debian 12 and 13:
# "217/USER Failed to set up user namespacing"). A daemon that lacks it in its own capability set
# (a docker-in-docker given SYS_ADMIN and NET_ADMIN only) starts no node that asks for it
# ("unable to apply caps"): a default would break every node there. `capabilities: [SYS_PTRACE]`
# opts in, and the diagnosis of a 217/USER unit names it.
SYSTEMD_CAPS = tuple(SYSTEMD_CAP_REASONS)

DEBIAN_MIRROR = "http://deb.debian.org/debian"


@final
@dataclass(frozen=True, slots=True)
class Bootstrap:
    """How to make a platform's base image without a registry: debootstrap on the runner.

    :param suite: the release (``bookworm``).
    :param mirror: the apt mirror to fetch it from.
    :param variant: debootstrap's ``--variant`` (``minbase``: the smallest usable system).
    :param include: extra packages debootstrap adds.
    """

    suite: str
    mirror: str = DEBIAN_MIRROR
    variant: str = "minbase"
    include: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Platform:
    """A named OS target.

    :param name: what users type (``debian-12``).
    :param image: the base image reference.
    :param family: ``debian``, ``rhel``, ``fedora``, ``suse``, ``arch``, ``alpine``, ``amazon``.
    :param package_manager: ``apt``, ``dnf``, ``yum``, ``zypper``, ``pacman``, ``apk``.
    :param init: what runs as PID 1 in the node.
    :param prepare: shell commands that make the bare image a whole machine; they are part of
        the recipe hash of the prepared image.
    :param tmpfs: tmpfs mounts of the node (path → mount options).
    :param cap_add: capabilities the node needs beyond Docker's default set.
    :param command: the container command (PID 1).
    :param aliases: other names that select this platform.
    :param packages: extra packages installed in the prepared image (part of the recipe).
    :param env: environment variables of the node's container.
    :param privileged: run the node privileged; only ever set by the user.
    :param dockerfile: a Dockerfile that makes the base image when it cannot be had otherwise
        (its directory is the build context).
    :param bootstrap: how to make the base image with debootstrap when it cannot be pulled.
    :param source: where the platform was defined (``built-in``, ``infranode.yaml:12``).
    """

    name: str
    image: str
    family: str
    package_manager: str
    init: Init = "systemd"
    prepare: tuple[str, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    privileged: bool = False
    dockerfile: str = ""
    bootstrap: Bootstrap | None = None
    source: str = "built-in"
