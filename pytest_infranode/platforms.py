"""Platforms: named OS targets, the built-in catalog, and lookup with "did you mean". Pure."""

from __future__ import annotations

import difflib
import fnmatch
import re
import shlex
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Literal
from typing import final

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
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

# The package index (/var/lib/apt/lists) stays in the prepared image: a converge's own
# `apt-get update` then fetches only what changed since the image was made (1.8 s -> 0.5 s on
# debian-12 here) instead of the whole index, in every node, every session. Downloaded .debs go.
_APT_PREPARE = (
    "apt-get update",
    "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
    "systemd systemd-sysv dbus procps iproute2 sudo python3 ca-certificates",
    "apt-get clean",
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


DEBIAN_MIRROR = "http://deb.debian.org/debian"
UBUNTU_MIRROR = "http://archive.ubuntu.com/ubuntu"


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


def install_command(package_manager: str, packages: Iterable[str]) -> str:
    """The shell command that installs ``packages`` with ``package_manager``. Pure.

    :raises ValueError: a package manager without a recipe.
    """
    names = " ".join(shlex.quote(p) for p in packages)
    recipes = {
        "apt": "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {names} && apt-get clean",
        "dnf": f"dnf install -y {names} && dnf clean all",
        "yum": f"yum install -y {names} && yum clean all",
        "zypper": f"zypper --non-interactive install {names} && zypper clean --all",
        "pacman": f"pacman -Sy --noconfirm {names} && pacman -Scc --noconfirm",
        "apk": f"apk add --no-cache {names}",
    }
    if package_manager not in recipes:
        raise ValueError(f"no install recipe for package manager {package_manager!r}")
    return recipes[package_manager]


def _systemd(
    name: str,
    image: str,
    family: str,
    pm: str,
    prepare: tuple[str, ...],
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
        prepare=prepare,
        tmpfs=dict(SYSTEMD_TMPFS),
        # systemd mounts (tmp.mount, private /tmp of sandboxed units) and keeps CAP_SYS_ADMIN
        # for units that drop privileges (Debian 13: "Failed to keep CAP_SYS_ADMIN" without it).
        cap_add=("SYS_ADMIN",),
        command=("/sbin/init",),
        aliases=aliases,
    )


BUILTIN_PLATFORMS: tuple[Platform, ...] = (
    _systemd(
        "debian-11",
        "debian:11",
        "debian",
        "apt",
        _APT_PREPARE,
        "debian-bullseye",
        bootstrap=Bootstrap("bullseye"),
    ),
    _systemd(
        "debian-12",
        "debian:12",
        "debian",
        "apt",
        _APT_PREPARE,
        "debian-bookworm",
        bootstrap=Bootstrap("bookworm"),
    ),
    _systemd(
        "debian-13",
        "debian:13",
        "debian",
        "apt",
        _APT_PREPARE,
        "debian-trixie",
        bootstrap=Bootstrap("trixie"),
    ),
    _systemd(
        "ubuntu-20.04",
        "ubuntu:20.04",
        "debian",
        "apt",
        _APT_PREPARE,
        "ubuntu-focal",
        bootstrap=Bootstrap("focal", UBUNTU_MIRROR),
    ),
    _systemd(
        "ubuntu-22.04",
        "ubuntu:22.04",
        "debian",
        "apt",
        _APT_PREPARE,
        "ubuntu-jammy",
        bootstrap=Bootstrap("jammy", UBUNTU_MIRROR),
    ),
    _systemd(
        "ubuntu-24.04",
        "ubuntu:24.04",
        "debian",
        "apt",
        _APT_PREPARE,
        "ubuntu-noble",
        bootstrap=Bootstrap("noble", UBUNTU_MIRROR),
    ),
    _systemd("rockylinux-8", "rockylinux/rockylinux:8", "rhel", "dnf", _DNF_PREPARE, "rocky-8"),
    _systemd("rockylinux-9", "rockylinux/rockylinux:9", "rhel", "dnf", _DNF_PREPARE, "rocky-9"),
    _systemd("almalinux-8", "almalinux:8", "rhel", "dnf", _DNF_PREPARE, "alma-8"),
    _systemd("almalinux-9", "almalinux:9", "rhel", "dnf", _DNF_PREPARE, "alma-9"),
    _systemd("centos-stream-9", "quay.io/centos/centos:stream9", "rhel", "dnf", _DNF_PREPARE, "centos-9"),
    _systemd("centos-stream-10", "quay.io/centos/centos:stream10", "rhel", "dnf", _DNF_PREPARE, "centos-10"),
    _systemd("fedora-41", "fedora:41", "fedora", "dnf", _DNF_PREPARE),
    _systemd("fedora-42", "fedora:42", "fedora", "dnf", _DNF_PREPARE),
    _systemd("amazonlinux-2023", "amazonlinux:2023", "amazon", "dnf", _DNF_PREPARE, "al2023"),
    _systemd("opensuse-leap-15.6", "opensuse/leap:15.6", "suse", "zypper", _ZYPPER_PREPARE, "opensuse-15.6"),
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

    def define(self, defn: PlatformDefinition, *, check_only: bool = False) -> Platform:
        """Add or override a platform from ``platform_definitions:`` in infranode.yaml.

        An existing name is overridden key by key. ``base:`` starts a new platform from
        another one. Otherwise the platform is new and needs ``image``, ``dockerfile`` or
        ``bootstrap``.

        :raises SettingsError: naming the file:line of the key at fault.
        """
        body = defn.body
        existing: Platform | None = None
        if "base" in body:
            base_name = _text(defn, "base", "debian-12")
            if not check_only:
                existing = replace(self.get(base_name, where=defn.at("base")), name=defn.name, aliases=())
        elif defn.name in self._by_name or defn.name in self._aliases:
            existing = self.get(defn.name)
        pm = _text(defn, "package_manager", "apt") if "package_manager" in body else ""
        if pm and pm not in _PREPARE_OF:
            raise SettingsError(
                f"unknown package manager {pm!r} for platform {defn.name!r}",
                where=defn.at("package_manager"),
                fix=f"use one of: {', '.join(_PREPARE_OF)}",
            )
        init = _text(defn, "init", "systemd") if "init" in body else ""
        if init and init not in ("systemd", "openrc", "none"):
            raise SettingsError(
                f"init of platform {defn.name!r} must be systemd, openrc or none, not {init!r}",
                where=defn.at("init"),
                fix="write `init: systemd` (or `none` to run the command as it is)",
            )
        if existing is None:
            if not check_only and not any(k in body for k in ("image", "dockerfile", "bootstrap")):
                raise SettingsError(
                    f"platform {defn.name!r} is new and says nothing about its image",
                    where=defn.at(),
                    fix="give it `image: REFERENCE`, `dockerfile: PATH`, `bootstrap: SUITE`, or "
                    "`base: debian-12` to start from a known platform",
                )
            pm = pm or "apt"
            the_init = init or "systemd"
            systemd = the_init == "systemd"
            existing = Platform(
                name=defn.name,
                image=f"infranode-base/{defn.name}:latest",
                family=_FAMILY_OF.get(pm, pm),
                package_manager=pm,
                init=the_init,  # type: ignore[arg-type]
                prepare=_PREPARE_OF.get(pm, ()) if systemd or the_init == "openrc" else (),
                tmpfs=dict(SYSTEMD_TMPFS) if systemd else {},
                cap_add=("SYS_ADMIN",) if systemd else (),
                command=("/sbin/init",) if the_init != "none" else (),
            )
        changes: dict[str, object] = {"source": defn.at()}
        if "image" in body:
            changes["image"] = _text(defn, "image", "registry.example.com/debian:12")
        if "dockerfile" in body:
            path = Path(_text(defn, "dockerfile", "images/Dockerfile.debian"))
            path = path if path.is_absolute() else Path(defn.base_dir) / path
            if not check_only and not path.is_file():
                raise SettingsError(
                    f"the Dockerfile of platform {defn.name!r} does not exist: {path}",
                    where=defn.at("dockerfile"),
                    fix="give a path relative to the configuration file",
                )
            changes["dockerfile"] = str(path)
        if "bootstrap" in body:
            changes["bootstrap"] = _bootstrap_of(defn, existing.bootstrap)
        if "family" in body:
            changes["family"] = _text(defn, "family", "debian")
        if pm:
            changes["package_manager"] = pm
        if init:
            changes["init"] = init
        if "packages" in body:
            changes["packages"] = _strings(defn, "packages", "[curl, git]")
        if "prepare" in body:
            changes["prepare"] = _strings(defn, "prepare", "['apt-get update', ...]")
        if "env" in body:
            changes["env"] = _mapping(defn, "env", "{LANG: C.UTF-8}")
        if "capabilities" in body:
            changes["cap_add"] = tuple(
                c.upper().removeprefix("CAP_") for c in _strings(defn, "capabilities", "[SYS_ADMIN]")
            )
        if "tmpfs" in body:
            value = body["tmpfs"]
            if isinstance(value, list):
                changes["tmpfs"] = {str(v): "" for v in value}
            else:
                changes["tmpfs"] = _mapping(defn, "tmpfs", "{/run: 'rw,exec', /tmp: ''}")
        if "command" in body:
            value = body["command"]
            changes["command"] = (
                tuple(shlex.split(value))
                if isinstance(value, str)
                else _strings(defn, "command", "[/sbin/init]")
            )
        if "aliases" in body:
            changes["aliases"] = _strings(defn, "aliases", "[my-os]")
        if "privileged" in body:
            if not isinstance(body["privileged"], bool):
                raise SettingsError(
                    f"`privileged` of platform {defn.name!r} must be true or false",
                    where=defn.at("privileged"),
                )
            changes["privileged"] = body["privileged"]
        platform = replace(existing, **changes)  # type: ignore[arg-type]
        if platform.packages:
            try:
                install_command(platform.package_manager, platform.packages)
            except ValueError:
                raise SettingsError(
                    f"platform {defn.name!r} lists packages, but infranode cannot install them "
                    f"with {platform.package_manager!r}",
                    where=defn.at("packages"),
                    fix=f"set `package_manager:` to one of {', '.join(_PREPARE_OF)}, or use `prepare:`",
                ) from None
        if not check_only:
            self.add(platform, source=defn.at(), replace=platform.name in self._by_name)
        return platform

    def families(self) -> list[str]:
        return sorted({p.family for p in self})

    def expand(self, pattern: str, *, where: str = "--infra-platform") -> list[Platform]:
        """The platforms one command-line word selects, in catalog order.

        ``debian-12`` or an alias: that platform. ``family:rhel``: every platform of the family.
        A shell-style glob (``debian-*``, ``ubuntu-2?.04``): every platform whose name or alias
        matches.

        :raises SettingsError: a family or glob that selects nothing.
        :raises UnknownPlatform: any other unknown name (with the closest names).
        """
        key = pattern.strip()
        if key.startswith("family:"):
            family = key.removeprefix("family:")
            found = [p for p in self if p.family == family]
            if not found:
                close = difflib.get_close_matches(family, self.families(), n=1)
                hint = f"did you mean 'family:{close[0]}'? " if close else ""
                raise SettingsError(
                    f"no platform is in family {family!r}",
                    where=where,
                    fix=f"{hint}Families: {', '.join(self.families())}",
                )
            return found
        if any(c in key for c in "*?["):
            found = [p for p in self if any(fnmatch.fnmatchcase(n, key) for n in (p.name, *p.aliases))]
            if not found:
                raise SettingsError(
                    f"no platform matches {key!r}",
                    where=where,
                    fix=f"Known platforms: {', '.join(self.names())} (`infranode platforms` lists them)",
                )
            return found
        return [self.get(key, where=where)]

    def select(self, names: Iterable[str], *, where: str = "--infra-platform") -> list[Platform]:
        """Resolve a list of names, aliases, ``family:`` words and globs, in order, without
        duplicates."""
        chosen: list[Platform] = []
        for name in names:
            for platform in self.expand(name, where=where):
                if platform not in chosen:
                    chosen.append(platform)
        return chosen


DEFINITION_KEYS = (
    "base",
    "image",
    "dockerfile",
    "bootstrap",
    "family",
    "package_manager",
    "init",
    "packages",
    "prepare",
    "env",
    "capabilities",
    "tmpfs",
    "command",
    "aliases",
    "privileged",
)
_FAMILY_OF = {
    "apt": "debian",
    "dnf": "rhel",
    "yum": "rhel",
    "zypper": "suse",
    "pacman": "arch",
    "apk": "alpine",
}
_PREPARE_OF = {
    "apt": _APT_PREPARE,
    "dnf": _DNF_PREPARE,
    "yum": _DNF_PREPARE,
    "zypper": _ZYPPER_PREPARE,
    "pacman": _PACMAN_PREPARE,
    "apk": _APK_PREPARE,
}


@final
@dataclass(frozen=True, slots=True)
class PlatformDefinition:
    """One entry of ``platform_definitions:`` in infranode.yaml, as written.

    :param name: the platform's name (an existing one is overridden).
    :param body: its keys (:data:`DEFINITION_KEYS`).
    :param where: ``file:line`` of the entry (key ``""``) and of each of its keys.
    :param base_dir: the directory relative ``dockerfile:`` paths start from.
    """

    name: str
    body: Mapping[str, object]
    where: Mapping[str, str] = field(default_factory=dict)
    base_dir: str = "."

    def at(self, key: str = "") -> str:
        return self.where.get(key) or self.where.get("", f"platform_definitions.{self.name}")


def _strings(defn: PlatformDefinition, key: str, example: str) -> tuple[str, ...]:
    value = defn.body[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise SettingsError(
            f"`{key}` of platform {defn.name!r} must be a list of strings",
            where=defn.at(key),
            fix=f"write `{key}: {example}`",
        )
    return tuple(str(v) for v in value)


def _mapping(defn: PlatformDefinition, key: str, example: str) -> dict[str, str]:
    value = defn.body[key]
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SettingsError(
            f"`{key}` of platform {defn.name!r} must be a mapping",
            where=defn.at(key),
            fix=f"write `{key}: {example}`",
        )
    return {k: "" if v is None else str(v) for k, v in value.items()}


def _text(defn: PlatformDefinition, key: str, example: str) -> str:
    value = defn.body[key]
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(
            f"`{key}` of platform {defn.name!r} must be a non-empty string",
            where=defn.at(key),
            fix=f"write `{key}: {example}`",
        )
    return value.strip()


def _bootstrap_of(defn: PlatformDefinition, inherited: Bootstrap | None) -> Bootstrap:
    value = defn.body["bootstrap"]
    if isinstance(value, str):
        value = {"suite": value}
    if not isinstance(value, dict):
        raise SettingsError(
            f"`bootstrap` of platform {defn.name!r} must be a suite name or a mapping",
            where=defn.at("bootstrap"),
            fix="write `bootstrap: {suite: bookworm, mirror: http://deb.debian.org/debian}`",
        )
    unknown = sorted(set(value) - {"suite", "mirror", "variant", "include"})
    if unknown:
        raise SettingsError(
            f"unknown key {unknown[0]!r} in `bootstrap` of platform {defn.name!r}",
            where=defn.at("bootstrap"),
            fix="use suite, mirror, variant, include",
        )
    suite = value.get("suite") or (inherited.suite if inherited else "")
    if not suite:
        raise SettingsError(
            f"`bootstrap` of platform {defn.name!r} needs a suite",
            where=defn.at("bootstrap"),
            fix="write `bootstrap: {suite: bookworm}`",
        )
    include = value.get("include") or []
    return Bootstrap(
        suite=str(suite),
        mirror=str(value.get("mirror") or (inherited.mirror if inherited else DEBIAN_MIRROR)),
        variant=str(value.get("variant") or (inherited.variant if inherited else "minbase")),
        include=tuple(str(i) for i in (include if isinstance(include, list) else [include])),
    )


def check_definition(defn: PlatformDefinition) -> None:
    """Check the keys and value types of one definition (before the catalog exists). Pure.

    :raises SettingsError: naming the file:line of the key at fault.
    """
    if not isinstance(defn.name, str) or not NAME_RE.fullmatch(defn.name):
        raise SettingsError(
            f"platform name {defn.name!r} is not allowed",
            where=defn.at(),
            fix="use lower-case letters, digits, '.', '_' and '-' (it names containers and test ids)",
        )
    for key in defn.body:
        if key not in DEFINITION_KEYS:
            close = difflib.get_close_matches(str(key), DEFINITION_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SettingsError(
                f"unknown setting {key!r} of platform {defn.name!r}",
                where=defn.at(str(key)),
                fix=f"{hint}Known settings: {', '.join(DEFINITION_KEYS)}",
            )
    # Building it against an empty catalog checks every value's type.
    Catalog(()).define(defn, check_only=True)


def split_names(value: str | Iterable[str]) -> list[str]:
    """Split ``"debian-12, debian-13"`` (or a list of such strings) into names."""
    parts = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        names.extend(n.strip() for n in part.replace(",", " ").split() if n.strip())
    return names
