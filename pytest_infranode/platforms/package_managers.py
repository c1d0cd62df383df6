"""Package managers: how each one's platforms are prepared, and its install command. Pure.

The install command of each manager is declared once, in :data:`PACKAGE_MANAGERS`; both the
prepared image's command (:func:`install_command`) and the one the in-node provisioners install
their tool with (:meth:`PackageManager.node_install`) are made from it.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import final

# Units that can never run in a container, masked in the prepared image so that a healthy node
# boots "running", not "degraded"; each with its reason (docs/systemd-nodes.md, "Masked units").
# A unit is masked by name before its package is installed: a role that installs the package
# later gets the mask too (a symlink to /dev/null in /etc/systemd/system wins over the package's
# unit). Measured on Debian 12 and 13 nodes (Docker 20.10, cgroup v1).
MASKED_UNITS: Mapping[str, str] = {
    "systemd-udevd.service": "no hardware: the host's udev owns the devices",
    "systemd-udevd-control.socket": "no hardware: the host's udev owns the devices",
    "systemd-udevd-kernel.socket": "no hardware: the host's udev owns the devices",
    "systemd-modules-load.service": "kernel modules are the host's; a node cannot load them",
    "sys-kernel-config.mount": "configfs is the host kernel's",
    "sys-kernel-debug.mount": "debugfs is the host kernel's",
    "sys-kernel-tracing.mount": "tracefs is the host kernel's",
    "getty.target": "no terminals to log in on; `infranode login` enters a node",
    "console-getty.service": "no console to log in on; `infranode login` enters a node",
    "systemd-firstboot.service": "the image is already set up; nobody answers its questions",
    "systemd-remount-fs.service": "the root file system is the daemon's overlay, mounted by it",
    # nfs-kernel-server and nfs-common: `mount: /proc/fs/nfsd: unknown filesystem type 'nfsd'`.
    "proc-fs-nfsd.mount": "the nfsd kernel file system: a module only the host can load",
    # nfs-common: `mount: /run/rpc_pipefs: unknown filesystem type 'rpc_pipefs'`.
    "run-rpc_pipefs.mount": "the rpc_pipefs kernel file system: a module only the host can load",
    # nvme-cli (a recommend of prometheus-node-exporter, among others): connects to NVMe over
    # Fabrics targets at boot, which needs the host's nvme-fabrics module and hardware.
    "nvmf-autoconnect.service": "NVMe over Fabrics hardware: the host's kernel module and devices",
}
_MASK = "systemctl mask " + " ".join(MASKED_UNITS)

# The package index (/var/lib/apt/lists) stays in the prepared image: a converge's own
# `apt-get update` then fetches only what changed since the image was made (1.8 s -> 0.5 s on
# debian-12 here) instead of the whole index, in every node, every session. Downloaded .debs go.
APT_PREPARE = (
    "apt-get update",
    "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
    "systemd systemd-sysv dbus procps iproute2 sudo python3 ca-certificates",
    "apt-get clean",
    _MASK,
)
DNF_PREPARE = (
    "dnf install -y systemd procps-ng iproute sudo python3 ca-certificates",
    "dnf clean all",
    _MASK,
)
ZYPPER_PREPARE = (
    "zypper --non-interactive install systemd procps iproute2 sudo python3 ca-certificates",
    "zypper clean --all",
    _MASK,
)
PACMAN_PREPARE = (
    "pacman -Syu --noconfirm systemd procps-ng iproute2 sudo python ca-certificates",
    "pacman -Scc --noconfirm",
    _MASK,
)
APK_PREPARE = (
    "apk add --no-cache openrc procps iproute2 sudo python3 ca-certificates",
    # OpenRC in a container: no hardware, no tty gettys.
    "sed -i 's/^#*rc_sys=.*/rc_sys=\"docker\"/' /etc/rc.conf",
    "sed -i '/getty/d' /etc/inittab",
)


@final
@dataclass(frozen=True, slots=True)
class PackageManager:
    """One package manager: what a new platform that uses it gets, and how it installs packages.

    :param family: the family of a platform defined with only this manager.
    :param prepare: what makes a bare image of it a whole machine (its init, sudo, Python).
    :param install: the command that installs the packages named after it, without asking.
    :param refresh: what fetches the package index before an install ("": the install does).
    :param env: an environment assignment the install needs (``DEBIAN_FRONTEND=…``).
    :param quiet: what makes the refresh and the install in a node print less.
    :param lean: what keeps a prepared image small (no recommended packages, no index cache).
    :param clean: what removes the downloaded packages after an install in an image.
    """

    family: str
    prepare: tuple[str, ...]
    install: str
    refresh: str = ""
    env: str = ""
    quiet: str = ""
    lean: str = ""
    clean: str = ""

    def image_install(self, packages: Iterable[str]) -> str:
        """The command a prepared image's ``packages:`` are installed with."""
        install = " ".join(w for w in (self.env, self.install, self.lean, _quoted(packages)) if w)
        return " && ".join(step for step in (self.refresh, install, self.clean) if step)

    def node_install(self, packages: Iterable[str]) -> str:
        """The command a provisioner installs its tool with in a running node: quieter than an
        image's, and it leaves the node's recommended packages, index and cache alone."""
        refresh = " ".join(w for w in (self.refresh, self.quiet) if w) if self.refresh else ""
        install = " ".join(w for w in (self.install, self.quiet, _quoted(packages)) if w)
        command = " && ".join(step for step in (refresh, install) if step)
        return f"export {self.env}; {command}" if self.env else command


def _quoted(packages: Iterable[str]) -> str:
    return " ".join(shlex.quote(p) for p in packages)


PACKAGE_MANAGERS: Mapping[str, PackageManager] = {
    "apt": PackageManager(
        "debian",
        APT_PREPARE,
        "apt-get install -y",
        refresh="apt-get update",
        env="DEBIAN_FRONTEND=noninteractive",
        quiet="-q",
        lean="--no-install-recommends",
        clean="apt-get clean",
    ),
    "dnf": PackageManager("rhel", DNF_PREPARE, "dnf install -y", clean="dnf clean all"),
    "yum": PackageManager("rhel", DNF_PREPARE, "yum install -y", clean="yum clean all"),
    "zypper": PackageManager(
        "suse", ZYPPER_PREPARE, "zypper --non-interactive install", clean="zypper clean --all"
    ),
    "pacman": PackageManager(
        "arch", PACMAN_PREPARE, "pacman -Sy --noconfirm", clean="pacman -Scc --noconfirm"
    ),
    "apk": PackageManager("alpine", APK_PREPARE, "apk add", lean="--no-cache"),
}


def install_command(package_manager: str, packages: Iterable[str]) -> str:
    """The shell command that installs ``packages`` in a prepared image. Pure.

    :raises ValueError: a package manager without a recipe.
    """
    if package_manager not in PACKAGE_MANAGERS:
        raise ValueError(f"no install recipe for package manager {package_manager!r}")
    return PACKAGE_MANAGERS[package_manager].image_install(packages)
