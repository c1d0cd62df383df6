"""The built-in platforms: the catalog every session starts from. Pure."""

from __future__ import annotations

from pytest_infranode.platforms.package_managers import PACKAGE_MANAGERS
from pytest_infranode.platforms.platform import SYSTEMD_CAPS
from pytest_infranode.platforms.platform import SYSTEMD_TMPFS
from pytest_infranode.platforms.platform import Bootstrap
from pytest_infranode.platforms.platform import Platform

UBUNTU_MIRROR = "http://archive.ubuntu.com/ubuntu"


def _systemd(
    name: str,
    image: str,
    family: str,
    pm: str,
    *aliases: str,
    bootstrap: Bootstrap | None = None,
) -> Platform:
    return Platform(
        bootstrap=bootstrap,
        name=name,
        image=image,
        family=family,
        package_manager=pm,
        init="systemd",
        prepare=PACKAGE_MANAGERS[pm].prepare,
        tmpfs=dict(SYSTEMD_TMPFS),
        cap_add=SYSTEMD_CAPS,
        command=("/sbin/init",),
        aliases=aliases,
    )


BUILTIN_PLATFORMS: tuple[Platform, ...] = (
    _systemd("debian-11", "debian:11", "debian", "apt", "debian-bullseye", bootstrap=Bootstrap("bullseye")),
    _systemd("debian-12", "debian:12", "debian", "apt", "debian-bookworm", bootstrap=Bootstrap("bookworm")),
    _systemd("debian-13", "debian:13", "debian", "apt", "debian-trixie", bootstrap=Bootstrap("trixie")),
    _systemd(
        "ubuntu-20.04",
        "ubuntu:20.04",
        "debian",
        "apt",
        "ubuntu-focal",
        bootstrap=Bootstrap("focal", UBUNTU_MIRROR),
    ),
    _systemd(
        "ubuntu-22.04",
        "ubuntu:22.04",
        "debian",
        "apt",
        "ubuntu-jammy",
        bootstrap=Bootstrap("jammy", UBUNTU_MIRROR),
    ),
    _systemd(
        "ubuntu-24.04",
        "ubuntu:24.04",
        "debian",
        "apt",
        "ubuntu-noble",
        bootstrap=Bootstrap("noble", UBUNTU_MIRROR),
    ),
    _systemd("rockylinux-8", "rockylinux/rockylinux:8", "rhel", "dnf", "rocky-8"),
    _systemd("rockylinux-9", "rockylinux/rockylinux:9", "rhel", "dnf", "rocky-9"),
    _systemd("almalinux-8", "almalinux:8", "rhel", "dnf", "alma-8"),
    _systemd("almalinux-9", "almalinux:9", "rhel", "dnf", "alma-9"),
    _systemd("centos-stream-9", "quay.io/centos/centos:stream9", "rhel", "dnf", "centos-9"),
    _systemd("centos-stream-10", "quay.io/centos/centos:stream10", "rhel", "dnf", "centos-10"),
    _systemd("fedora-41", "fedora:41", "fedora", "dnf"),
    _systemd("fedora-42", "fedora:42", "fedora", "dnf"),
    _systemd("amazonlinux-2023", "amazonlinux:2023", "amazon", "dnf", "al2023"),
    _systemd("opensuse-leap-15.6", "opensuse/leap:15.6", "suse", "zypper", "opensuse-15.6"),
    _systemd("archlinux", "archlinux:latest", "arch", "pacman", "arch"),
    *(
        Platform(
            name=f"alpine-{v}",
            image=f"alpine:{v}",
            family="alpine",
            package_manager="apk",
            init="openrc",
            prepare=PACKAGE_MANAGERS["apk"].prepare,
            tmpfs={"/run": "rw,nosuid,nodev,exec,mode=755"},
            command=("/sbin/init",),
        )
        for v in ("3.20", "3.21", "3.22")
    ),
)
