"""The catalog: platforms by name and alias, what a command-line word selects, "did you mean".

Built once per session from the built-ins, what plugins add and ``platform_definitions:``
(:func:`build_catalog`). Pure.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import replace
from typing import final

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.errors import UnknownPlatform
from pytest_infranode.platforms.builtin import BUILTIN_PLATFORMS
from pytest_infranode.platforms.definitions import PlatformDefinition
from pytest_infranode.platforms.definitions import base_of
from pytest_infranode.platforms.definitions import platform_from
from pytest_infranode.platforms.platform import NAME_RE
from pytest_infranode.platforms.platform import Platform

PluginPlatforms = Iterable[Iterable[Platform] | None]
"""What the ``pytest_infranode_add_platforms`` hook returns: one list (or None) per plugin."""


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

    def define(self, defn: PlatformDefinition) -> Platform:
        """Add or override a platform from ``platform_definitions:`` in infranode.yaml.

        An existing name is overridden key by key. ``base:`` starts a new platform from
        another one. Otherwise the platform is new and needs ``image``, ``dockerfile`` or
        ``bootstrap`` (see :func:`~pytest_infranode.platforms.definitions.platform_from`).

        :raises SettingsError: naming the file:line of the key at fault.
        """
        base = base_of(defn)
        start: Platform | None = None
        if base is not None:
            start = replace(self.get(base, where=defn.at("base")), name=defn.name, aliases=())
        elif defn.name in self._by_name or defn.name in self._aliases:
            start = self.get(defn.name)
        platform = platform_from(defn, start)
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
            return self._family(key.removeprefix("family:"), where)
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

    def _family(self, family: str, where: str) -> list[Platform]:
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

    def select(self, names: Iterable[str], *, where: str = "--infra-platform") -> list[Platform]:
        """Resolve a list of names, aliases, ``family:`` words and globs, in order, without
        duplicates."""
        chosen: list[Platform] = []
        for name in names:
            for platform in self.expand(name, where=where):
                if platform not in chosen:
                    chosen.append(platform)
        return chosen


def build_catalog(plugins: PluginPlatforms = (), definitions: Iterable[PlatformDefinition] = ()) -> Catalog:
    """Built-ins, then what plugins add, then ``platform_definitions:`` (which may override)."""
    catalog = Catalog()
    for platforms in plugins:
        for platform in platforms or []:
            catalog.add(platform, source="a pytest_infranode_add_platforms hook")
    for definition in definitions:
        catalog.define(definition)
    return catalog


def split_names(value: str | Iterable[str]) -> list[str]:
    """Split ``"debian-12, debian-13"`` (or a list of such strings) into names."""
    parts = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        names.extend(n.strip() for n in part.replace(",", " ").split() if n.strip())
    return names
