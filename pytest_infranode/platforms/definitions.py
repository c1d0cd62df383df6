"""``platform_definitions:`` of infranode.yaml: one entry as written, checked, and made a
``Platform`` (new, from a ``base:``, or over an existing one key by key). Pure apart from
looking for a ``dockerfile:``; every error names the file:line of the key at fault."""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import final

from pytest_infranode.errors import SettingsError
from pytest_infranode.platforms.package_managers import PACKAGE_MANAGERS
from pytest_infranode.platforms.package_managers import install_command
from pytest_infranode.platforms.platform import DEBIAN_MIRROR
from pytest_infranode.platforms.platform import NAME_RE
from pytest_infranode.platforms.platform import SYSTEMD_CAPS
from pytest_infranode.platforms.platform import SYSTEMD_TMPFS
from pytest_infranode.platforms.platform import Bootstrap
from pytest_infranode.platforms.platform import Init
from pytest_infranode.platforms.platform import Platform
from pytest_infranode.projectfiles import FileRule
from pytest_infranode.projectfiles import check_path
from pytest_infranode.yamltext import QUOTE
from pytest_infranode.yamltext import as_text
from pytest_infranode.yamltext import first_not_text
from pytest_infranode.yamltext import shown

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
_INITS: Mapping[str, Init] = {"systemd": "systemd", "openrc": "openrc", "none": "none"}


@final
@dataclass(frozen=True, slots=True)
class PlatformDefinition:
    """One entry of ``platform_definitions:`` in infranode.yaml, as written.

    :param name: the platform's name (an existing one is overridden).
    :param body: its keys (:data:`DEFINITION_KEYS`).
    :param where: ``file:line`` of the entry (key ``""``) and of each of its keys.
    :param base_dir: the directory relative ``dockerfile:`` paths start from.
    :param files: the rule for the files it names (the Dockerfile and its build context, which
        the daemon gets whole): inside the project unless ``allow_outside_project:``; None: the
        rule of ``base_dir``.
    """

    name: str
    body: Mapping[str, object]
    where: Mapping[str, str] = field(default_factory=dict)
    base_dir: str = "."
    files: FileRule | None = field(default=None, compare=False)

    def at(self, key: str = "") -> str:
        return self.where.get(key) or self.where.get("", f"platform_definitions.{self.name}")


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
    base_of(defn)
    # Made without a catalog (no base, no platform to override), it checks every value's type.
    platform_from(defn, None, check_only=True)


def base_of(defn: PlatformDefinition) -> str | None:
    """The name in ``base:``, if the definition starts from another platform."""
    return _text(defn, "base", "debian-12") if "base" in defn.body else None


def platform_from(defn: PlatformDefinition, start: Platform | None, *, check_only: bool = False) -> Platform:
    """The platform ``defn`` makes: ``start`` (its base, or the platform it overrides) with the
    keys it gives, else a new platform, which needs ``image``, ``dockerfile`` or ``bootstrap``.

    :param check_only: only check the values (no file is looked for, a new platform may say
        nothing about its image).
    :raises SettingsError: naming the file:line of the key at fault.
    """
    pm = _package_manager(defn)
    init = _init(defn)
    platform = start if start is not None else _new(defn, pm, init, check_only=check_only)
    changes: dict[str, object] = {"source": defn.at()}
    for key, attr, read in _READERS:
        if key in defn.body:
            changes[attr] = read(defn, platform, check_only)
    if pm:
        changes["package_manager"] = pm
    if init:
        changes["init"] = init
    made = replace(platform, **changes)  # type: ignore[arg-type]
    _check_installable(defn, made)
    return made


def _package_manager(defn: PlatformDefinition) -> str:
    pm = _text(defn, "package_manager", "apt") if "package_manager" in defn.body else ""
    if pm and pm not in PACKAGE_MANAGERS:
        raise SettingsError(
            f"unknown package manager {pm!r} for platform {defn.name!r}",
            where=defn.at("package_manager"),
            fix=f"use one of: {', '.join(PACKAGE_MANAGERS)}",
        )
    return pm


def _init(defn: PlatformDefinition) -> Init | None:
    if "init" not in defn.body:
        return None
    init = _text(defn, "init", "systemd")
    if init not in _INITS:
        raise SettingsError(
            f"init of platform {defn.name!r} must be systemd, openrc or none, not {init!r}",
            where=defn.at("init"),
            fix="write `init: systemd` (or `none` to run the command as it is)",
        )
    return _INITS[init]


def _new(defn: PlatformDefinition, pm: str, init: Init | None, *, check_only: bool) -> Platform:
    """A platform no catalog has yet: its package manager's recipe, its init's mounts."""
    if not check_only and not any(k in defn.body for k in ("image", "dockerfile", "bootstrap")):
        raise SettingsError(
            f"platform {defn.name!r} is new and says nothing about its image",
            where=defn.at(),
            fix="give it `image: REFERENCE`, `dockerfile: PATH`, `bootstrap: SUITE`, or "
            "`base: debian-12` to start from a known platform",
        )
    manager = PACKAGE_MANAGERS[pm or "apt"]
    init = init or "systemd"
    tmpfs, cap_add, command = _INIT_SHAPES[init]
    return Platform(
        name=defn.name,
        image=f"infranode-base/{defn.name}:latest",
        family=manager.family,
        package_manager=pm or "apt",
        init=init,
        prepare=manager.prepare if command else (),
        tmpfs=dict(tmpfs),
        cap_add=cap_add,
        command=command,
    )


# What a new platform's container gets for its init: tmpfs mounts, capabilities, command.
_INIT_SHAPES: Mapping[Init, tuple[Mapping[str, str], tuple[str, ...], tuple[str, ...]]] = {
    "systemd": (SYSTEMD_TMPFS, SYSTEMD_CAPS, ("/sbin/init",)),
    "openrc": ({}, (), ("/sbin/init",)),
    "none": ({}, (), ()),
}


def _check_installable(defn: PlatformDefinition, platform: Platform) -> None:
    if not platform.packages:
        return
    try:
        install_command(platform.package_manager, platform.packages)
    except ValueError:
        raise SettingsError(
            f"platform {defn.name!r} lists packages, but infranode cannot install them "
            f"with {platform.package_manager!r}",
            where=defn.at("packages"),
            fix=f"set `package_manager:` to one of {', '.join(PACKAGE_MANAGERS)}, or use `prepare:`",
        ) from None


# The keys that change a platform, in the order they are checked: key, field, reader.
_Read = Callable[[PlatformDefinition, Platform, bool], object]


def _dockerfile(defn: PlatformDefinition, _platform: Platform, check_only: bool) -> str:
    path = Path(_text(defn, "dockerfile", "images/Dockerfile.debian"))
    path = path if path.is_absolute() else Path(defn.base_dir) / path
    if check_only:
        return str(path)
    if not path.exists():
        raise SettingsError(
            f"the Dockerfile of platform {defn.name!r} does not exist: {path}",
            where=defn.at("dockerfile"),
            fix="give a path relative to the configuration file",
        )
    rule = defn.files or FileRule(Path(defn.base_dir))
    what = f"the Dockerfile of platform {defn.name!r}"
    check_path(path, rule, what=what, where=defn.at("dockerfile"))
    # the daemon gets the Dockerfile's whole folder as the build context (links in it are sent
    # as links, not followed): that folder must be in the project too, even when the Dockerfile
    # named is a link into the project
    context, project = path.parent.resolve(), rule.project.resolve()
    if not rule.allow_outside and context != project and project not in context.parents:
        raise SettingsError(
            f"{what} is in {path.parent}, outside the project ({project}): the daemon would get "
            "that whole folder as the build context",
            where=defn.at("dockerfile"),
            fix="keep the Dockerfile in a folder of the project, or set `allow_outside_project: true`",
        )
    return str(path)


def _capabilities(defn: PlatformDefinition, _platform: Platform, _check_only: bool) -> tuple[str, ...]:
    return tuple(c.upper().removeprefix("CAP_") for c in _strings(defn, "capabilities", "[SYS_ADMIN]"))


def _tmpfs(defn: PlatformDefinition, _platform: Platform, _check_only: bool) -> dict[str, str]:
    value = defn.body["tmpfs"]
    if isinstance(value, list):
        return {str(v): "" for v in value}
    return _mapping(defn, "tmpfs", "{/run: 'rw,exec', /tmp: ''}")


def _command(defn: PlatformDefinition, _platform: Platform, _check_only: bool) -> tuple[str, ...]:
    value = defn.body["command"]
    return tuple(shlex.split(value)) if isinstance(value, str) else _strings(defn, "command", "[/sbin/init]")


def _privileged(defn: PlatformDefinition, _platform: Platform, _check_only: bool) -> bool:
    value = defn.body["privileged"]
    if not isinstance(value, bool):
        raise SettingsError(
            f"`privileged` of platform {defn.name!r} must be true or false", where=defn.at("privileged")
        )
    return value


_READERS: tuple[tuple[str, str, _Read], ...] = (
    ("image", "image", lambda d, _p, _c: _text(d, "image", "registry.example.com/debian:12")),
    ("dockerfile", "dockerfile", _dockerfile),
    ("bootstrap", "bootstrap", lambda d, p, _c: _bootstrap_of(d, p.bootstrap)),
    ("family", "family", lambda d, _p, _c: _text(d, "family", "debian")),
    ("packages", "packages", lambda d, _p, _c: _strings(d, "packages", "[curl, git]")),
    ("prepare", "prepare", lambda d, _p, _c: _strings(d, "prepare", "['apt-get update', ...]")),
    ("env", "env", lambda d, _p, _c: _mapping(d, "env", "{LANG: C.UTF-8}")),
    ("capabilities", "cap_add", _capabilities),
    ("tmpfs", "tmpfs", _tmpfs),
    ("command", "command", _command),
    ("aliases", "aliases", lambda d, _p, _c: _strings(d, "aliases", "[my-os]")),
    ("privileged", "privileged", _privileged),
)


def _strings(defn: PlatformDefinition, key: str, example: str) -> tuple[str, ...]:
    value = defn.body[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SettingsError(
            f"`{key}` of platform {defn.name!r} must be a list of strings",
            where=defn.at(key),
            fix=f"write `{key}: {example}`",
        )
    if None in value or first_not_text(value) is not None:
        bad = None if None in value else first_not_text(value)
        raise SettingsError(
            f"`{key}` of platform {defn.name!r} must be a list of strings, but holds {shown(bad)}",
            where=defn.at(key),
            fix=f"{QUOTE}; or write `{key}: {example}`",
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
    bad = next((k for k, v in value.items() if v is not None and as_text(v) is None), None)
    if bad is not None:
        raise SettingsError(
            f"`{key}.{bad}` of platform {defn.name!r} must be a string, not {shown(value[bad])}",
            where=defn.at(key),
            fix=f"{QUOTE} (an empty value is `{bad}:` or `{bad}: ''`)",
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
