"""Platforms: named OS targets, the built-in catalog, and lookup with "did you mean". Pure."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Literal
from typing import final

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import UnknownPlatform

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

# Units that only make sense on real hardware; masked so that boot reports "running".
_MASKED_UNITS = (
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-modules-load.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "getty.target",
    "console-getty.service",
    "systemd-firstboot.service",
    "systemd-remount-fs.service",
)

_APT_PREPARE = (
    "apt-get update",
    "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
    "systemd systemd-sysv dbus procps iproute2 sudo python3 ca-certificates",
    "apt-get clean",
    "rm -rf /var/lib/apt/lists/*",
    "systemctl mask " + " ".join(_MASKED_UNITS),
)
_DNF_PREPARE = (
    "dnf install -y systemd procps-ng iproute sudo python3 ca-certificates",
    "dnf clean all",
    "systemctl mask " + " ".join(_MASKED_UNITS),
)
_ZYPPER_PREPARE = (
    "zypper --non-interactive install systemd procps iproute2 sudo python3 ca-certificates",
    "zypper clean --all",
    "systemctl mask " + " ".join(_MASKED_UNITS),
)
_PACMAN_PREPARE = (
    "pacman -Syu --noconfirm systemd procps-ng iproute2 sudo python ca-certificates",
    "pacman -Scc --noconfirm",
    "systemctl mask " + " ".join(_MASKED_UNITS),
)
_APK_PREPARE = (
    "apk add --no-cache openrc procps iproute2 sudo python3 ca-certificates",
    # OpenRC in a container: no hardware, no tty gettys.
    "sed -i 's/^#*rc_sys=.*/rc_sys=\"docker\"/' /etc/rc.conf",
    "sed -i '/getty/d' /etc/inittab",
)


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


def _systemd(
    name: str, image: str, family: str, pm: str, prepare: tuple[str, ...], *aliases: str
) -> Platform:
    return Platform(
        name=name,
        image=image,
        family=family,
        package_manager=pm,
        init="systemd",
        prepare=prepare,
        tmpfs=dict(SYSTEMD_TMPFS),
        # systemd mounts (tmp.mount, private /tmp of sandboxed units) and keeps CAP_SYS_ADMIN
        # for units that drop privileges (Debian 13: "Failed to keep CAP_SYS_ADMIN" without it).
        cap_add=("SYS_ADMIN",),
        command=("/sbin/init",),
        aliases=aliases,
    )


BUILTIN_PLATFORMS: tuple[Platform, ...] = (
    _systemd("debian-11", "debian:11", "debian", "apt", _APT_PREPARE, "debian-bullseye"),
    _systemd("debian-12", "debian:12", "debian", "apt", _APT_PREPARE, "debian-bookworm"),
    _systemd("debian-13", "debian:13", "debian", "apt", _APT_PREPARE, "debian-trixie"),
    _systemd("ubuntu-20.04", "ubuntu:20.04", "debian", "apt", _APT_PREPARE, "ubuntu-focal"),
    _systemd("ubuntu-22.04", "ubuntu:22.04", "debian", "apt", _APT_PREPARE, "ubuntu-jammy"),
    _systemd("ubuntu-24.04", "ubuntu:24.04", "debian", "apt", _APT_PREPARE, "ubuntu-noble"),
    _systemd("rockylinux-8", "rockylinux/rockylinux:8", "rhel", "dnf", _DNF_PREPARE, "rocky-8"),
    _systemd("rockylinux-9", "rockylinux/rockylinux:9", "rhel", "dnf", _DNF_PREPARE, "rocky-9"),
    _systemd("almalinux-8", "almalinux:8", "rhel", "dnf", _DNF_PREPARE, "alma-8"),
    _systemd("almalinux-9", "almalinux:9", "rhel", "dnf", _DNF_PREPARE, "alma-9"),
    _systemd("centos-stream-9", "quay.io/centos/centos:stream9", "rhel", "dnf", _DNF_PREPARE),
    _systemd("centos-stream-10", "quay.io/centos/centos:stream10", "rhel", "dnf", _DNF_PREPARE),
    _systemd("fedora-41", "fedora:41", "fedora", "dnf", _DNF_PREPARE),
    _systemd("fedora-42", "fedora:42", "fedora", "dnf", _DNF_PREPARE),
    _systemd("amazonlinux-2023", "amazonlinux:2023", "amazon", "dnf", _DNF_PREPARE),
    _systemd("opensuse-leap-15.6", "opensuse/leap:15.6", "suse", "zypper", _ZYPPER_PREPARE),
    _systemd("archlinux", "archlinux:latest", "arch", "pacman", _PACMAN_PREPARE, "arch"),
    *(
        Platform(
            name=f"alpine-{v}",
            image=f"alpine:{v}",
            family="alpine",
            package_manager="apk",
            init="openrc",
            prepare=_APK_PREPARE,
            tmpfs={"/run": "rw,nosuid,nodev,exec,mode=755"},
            command=("/sbin/init",),
        )
        for v in ("3.20", "3.21", "3.22")
    ),
)


@final
class Catalog:
    """Platforms by name and alias. Built from the built-ins plus what plugins add."""

    def __init__(self, platforms: Iterable[Platform] = BUILTIN_PLATFORMS) -> None:
        self._by_name: dict[str, Platform] = {}
        self._aliases: dict[str, str] = {}
        for p in platforms:
            self.add(p)

    def add(self, platform: Platform, *, source: str = "built-in", replace: bool = False) -> None:
        """Add a platform; a name clash is an error unless ``replace`` (user overrides)."""
        for name in (platform.name, *platform.aliases):
            if not NAME_RE.fullmatch(name):
                raise PluginError(
                    f"platform name {name!r} from {source} is not allowed",
                    fix="use lower-case letters, digits, '.', '_' and '-' (it names containers and test ids)",
                )
        if not replace:
            for name in (platform.name, *platform.aliases):
                if name in self._by_name or name in self._aliases:
                    raise PluginError(
                        f"platform name {name!r} from {source} is already taken",
                        fix="give the platform another name or alias, or override it in infranode.yaml",
                    )
        self._by_name[platform.name] = platform
        for alias in platform.aliases:
            self._aliases[alias] = platform.name

    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self) -> Iterator[Platform]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str, *, where: str = "--infra-platform") -> Platform:
        """Return the platform called ``name`` (or an alias of it).

        :raises UnknownPlatform: with the closest names when there is none.
        """
        key = name.strip()
        if key in self._by_name:
            return self._by_name[key]
        if key in self._aliases:
            return self._by_name[self._aliases[key]]
        candidates = [*self._by_name, *self._aliases]
        suggestions = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
        raise UnknownPlatform(key, known=self.names(), suggestions=suggestions, where=where)

    def select(self, names: Iterable[str], *, where: str = "--infra-platform") -> list[Platform]:
        """Resolve a list of names, in order, without duplicates."""
        chosen: list[Platform] = []
        for name in names:
            platform = self.get(name, where=where)
            if platform not in chosen:
                chosen.append(platform)
        return chosen


def split_names(value: str | Iterable[str]) -> list[str]:
    """Split ``"debian-12, debian-13"`` (or a list of such strings) into names."""
    parts = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        names.extend(n.strip() for n in part.replace(",", " ").split() if n.strip())
    return names
