"""What the tests run against: a platform and one node of it, and the nodes a session needs. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from typing import final

from pytest_infranode import reaper
from pytest_infranode.errors import SettingsError
from pytest_infranode.node import container_name
from pytest_infranode.platforms import Platform
from pytest_infranode.settings import NodeConfig
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import Settings
from pytest_infranode.settings import converge_order

DEFAULT_NODE = "default"
"""The key of the single node of a platform in ``infra_nodes`` when ``nodes:`` is not used."""

Role = Literal["single", "controller", "worker"]


@final
@dataclass(frozen=True, slots=True)
class Target:
    """What one parametrized test runs against: a platform and one node of it."""

    platform: Platform
    node: str = ""
    """The short name in ``nodes:``; "" for the single node of a platform."""

    @property
    def key(self) -> str:
        return f"{self.platform.name}/{self.node}"


@final
@dataclass(frozen=True, slots=True)
class Identity:
    """Who this process is in its session: the id and owner on every label, and its role under
    pytest-xdist (``controller`` and ``worker``; ``single`` without it)."""

    session_id: str
    owner: str
    role: Role = "single"
    shared: Path | None = None
    """The directory the processes of an xdist session share (see ``sharing.py``)."""

    def node_name(self, target: Target) -> str:
        """The container name the node of ``target`` has (or will have)."""
        return container_name(self.session_id, target.platform.name, target.node)


@final
class NodeLayout:
    """The nodes made on every platform: one unnamed node, or those of ``nodes:``."""

    def __init__(self, settings: Settings) -> None:
        check_unique_names(settings)
        self.settings = settings
        self.configs: dict[str, NodeConfig] = {n.name: n for n in settings.nodes} or {"": NodeConfig(name="")}
        """Short name → settings of each node made per platform, in file order."""
        self.default = next(n.name for n in settings.nodes) if settings.nodes else ""
        self.order = converge_order(self.configs) if settings.nodes else [""]
        """Short names, each after the nodes it depends on."""

    def names_on(self, platform: str) -> list[str]:
        """Short names of the nodes made on ``platform``, in file order: every node, but where
        nodes name their own ``platform:`` (a scenario of different images), a platform some
        node names gets those and the nodes that name none; a platform no node names (one
        ``--infra-platform`` re-targets the scenario to) gets every node."""
        if not any(c.platform == platform for c in self.configs.values()):
            return list(self.configs)
        return [n for n, c in self.configs.items() if c.platform in ("", platform)]

    def span(self) -> list[str]:
        """The platforms one scenario spans, in the session's order: when every node names its own
        ``platform:`` and each is a platform of the session (a scenario of different images run on
        its own images), its nodes are one set across those platforms, with one network, one
        inventory and one run of a provisioner that converges nodes together, as on one
        platform. Empty otherwise (a node made everywhere, or a platform re-targeted to)."""
        chosen = [p.name for p in self.settings.platforms]
        pinned = {c.platform for c in self.configs.values()}
        if not self.settings.nodes or not pinned <= set(chosen):
            return []
        return [p for p in chosen if p in pinned]

    def span_of(self, platform: str) -> list[str]:
        """The platforms whose nodes are one set with those of ``platform``: the :meth:`span`
        it is in, else itself alone."""
        span = self.span()
        return span if platform in span else [platform]

    def home(self, platform: str) -> str:
        """The platform whose network and inventory the nodes of ``platform`` share: the first
        of the :meth:`span` it is in, else itself."""
        return self.span_of(platform)[0]

    def members(self, platform: str) -> list[tuple[str, str]]:
        """(platform, short name) of every node in the inventory of ``platform``: the whole
        :meth:`span` for a platform of it (each node on its own platform), else the nodes made on
        ``platform``."""
        if platform in self.span():
            return [(c.platform, n) for n, c in self.configs.items()]
        return [(platform, n) for n in self.names_on(platform)]

    def default_on(self, platform: str) -> str:
        """The node a test without a marker or ``testinfra_hosts`` runs on: the first one of
        ``platform``."""
        return self.names_on(platform)[0]

    def provisioner_of(self, short_name: str) -> ProvisionerConfig:
        """The provisioner settings of a node: its own, else the top-level ones."""
        own = self.configs.get(short_name)
        return own.provisioner if own is not None and own.provisioner else self.settings.provisioner

    def provisioner_configs(self) -> list[ProvisionerConfig]:
        return [self.settings.provisioner] + [
            n.provisioner for n in self.settings.nodes if n.provisioner is not None
        ]

    def dependents(self, name: str) -> set[str]:
        """``name`` and every node that (transitively) depends on it."""
        found = {name}
        changed = True
        while changed:
            changed = False
            for other, config in self.configs.items():
                if other not in found and found & set(config.depends_on):
                    found.add(other)
                    changed = True
        return found

    def plan(self, targets: Iterable[Target]) -> list[Target]:
        """Every node the tests of ``targets`` need, platform by platform, dependencies first."""
        targets = list(targets)
        wanted = {t.key for t in targets}
        platforms = {t.platform.name: t.platform for t in targets}
        return [
            Target(platform, name)
            for platform in platforms.values()
            for name in self.order
            if name in self.names_on(platform.name)
            and any(f"{platform.name}/{n}" in wanted for n in self.dependents(name))
        ]

    def dependencies(self, name: str) -> set[str]:
        """Every node ``name`` (transitively) depends on, without itself."""
        found: set[str] = set()
        todo = list(self.configs[name].depends_on)
        while todo:
            dep = todo.pop()
            if dep not in found and dep in self.configs:
                found.add(dep)
                todo += self.configs[dep].depends_on
        return found

    def converged_together(self, name: str, platform: str = "") -> list[str]:
        """The nodes converged in one run with ``name`` (those sharing its provisioner
        settings, in converge order; on a platform of the :meth:`span`, across all of it), when a
        provisioner can (see ``ConvergesTogether``); empty when ``name`` is converged alone.

        A node converged alone that depends on one of them, and on which one of them depends,
        would have to be converged in the middle of the run: then every node is converged
        alone (``depends_on`` decides, as without one run).
        """
        if not self.settings.nodes or name not in self.configs:
            return []
        config = self.provisioner_of(name)
        on = self.names_on(platform) if platform and platform not in self.span() else list(self.configs)
        members = [n for n in self.order if n in on and self.provisioner_of(n) == config]
        if len(members) < 2:
            return []
        outside = {d for m in members for d in self.dependencies(m)} - set(members)
        if any(set(members) & self.dependencies(d) for d in outside):
            return []
        return members

    def levels(self, names: list[str]) -> list[list[str]]:
        """``names`` in ``depends_on`` levels: the first holds those that depend on none of
        them, each next one those whose dependencies among them are in earlier levels. Pure."""
        level: dict[str, int] = {}
        for name in [n for n in self.order if n in names]:
            deps = [d for d in self.dependencies(name) if d in names]
            level[name] = 1 + max((level[d] for d in deps), default=-1)
        return [[n for n in level if level[n] == i] for i in range(max(level.values(), default=-1) + 1)]

    def with_dependencies(self, target: Target) -> list[Target]:
        """``target`` after every node it (transitively) depends on."""
        return [Target(target.platform, n) for n in self.order if target.node in self.dependents(n)]

    def select(self, names: tuple[str, ...] = (), group: str | None = None) -> list[str]:
        """Short names chosen by an ``infra_node`` marker; without one, the default node.

        :raises SettingsError: a name or group that ``nodes:`` does not declare.
        """
        declared = [n for n in self.configs if n]
        where = "@pytest.mark.infra_node"
        if (names or group) and not declared:
            raise SettingsError(
                "this test asks for a named node, but the configuration declares no `nodes:`",
                where=where,
                fix="declare them in infranode.yaml: `nodes: {web: {}, db: {}}`",
            )
        chosen = list(names)
        for name in chosen:
            if name not in self.configs:
                close = difflib.get_close_matches(name, declared, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SettingsError(
                    f"unknown node {name!r}", where=where, fix=f"{hint}Nodes: {', '.join(declared)}"
                )
        if group is not None:
            members = [n for n, c in self.configs.items() if group in c.groups]
            if not members:
                groups = sorted({g for c in self.configs.values() for g in c.groups})
                raise SettingsError(
                    f"no node is in group {group!r}",
                    where=where,
                    fix=f"groups: {', '.join(groups) or 'none declared'} (set `groups:` on a node)",
                )
            chosen += [m for m in members if m not in chosen]
        return chosen or [self.default]

    def select_hosts(
        self, specs: Iterable[object], platform_names: Iterable[str] = (), where: str = ""
    ) -> list[str]:
        """Short names chosen by a test module's ``testinfra_hosts`` (testinfra's host specs):
        ``NAME`` or ``GROUP``, ``BACKEND://NAME`` or ``BACKEND://GROUP`` (``docker://web``,
        ``ssh://user@web``, the inventory backend's ``…://servers``), ``all``, and the inventory
        names that testinfra's inventory runner returns (the nodes' names); each node
        once, in ``nodes:`` order. An empty list chooses none (the tests are skipped, as
        testinfra does). Without ``nodes:``, the single node is the platform's name and ``all``.

        :raises SettingsError: a host that is no node or group, or ``local://``.
        """
        declared = [n for n in self.configs if n]
        where = where or "testinfra_hosts"
        chosen: set[str] = set()
        for spec in specs:
            if not isinstance(spec, str):
                raise SettingsError(
                    f"testinfra_hosts holds {spec!r}, not a host name",
                    where=where,
                    fix='list host names: testinfra_hosts = ["servers"]',
                )
            scheme, _, rest = spec.rpartition("://")
            name = rest.split("?", 1)[0].rsplit("@", 1)[-1].strip()
            if scheme == "local" or not name:
                raise SettingsError(
                    f"testinfra_hosts names {spec!r}: the specs run in the nodes, not on the runner",
                    where=where,
                    fix="name nodes or groups of `nodes:` (NAME, GROUP, BACKEND://NAME, all)",
                )
            for part in name.split(","):
                chosen |= self._hosts_named(part.strip(), declared, set(platform_names), where)
        return [n for n in self.configs if n in chosen]

    def _hosts_named(self, name: str, declared: list[str], platforms: set[str], where: str) -> set[str]:
        if name == "all" or (not declared and name in platforms | {""}):
            return set(self.configs)
        if name in declared:
            return {name}
        members = {n for n, c in self.configs.items() if name in c.groups}
        if members:
            return members
        groups = sorted({g for c in self.configs.values() for g in c.groups})
        close = difflib.get_close_matches(name, [*declared, *groups], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = (
            f"nodes: {', '.join(declared)}; groups: {', '.join(groups) or 'none'}"
            if declared
            else (f"the single node of each platform: {', '.join(sorted(platforms))}, or all")
        )
        raise SettingsError(
            f"testinfra_hosts names {name!r}, which is no node or group", where=where, fix=hint + known
        )


def _describe(platform: str, node: str) -> str:
    return f"platform {platform!r} node {node!r}" if node else f"platform {platform!r}"


def check_unique_names(settings: Settings) -> None:
    """Refuse platforms and nodes whose names build one container name (or network name, or
    kept name), before any node exists: ``debian-12`` + ``x-y`` and ``debian-12-x`` + ``y`` both
    make ``infranode-<session>-debian-12-x-y``, and the daemon would answer the second with 409.
    Pure: the session id is the same prefix on every name, so a placeholder stands for it.

    :raises SettingsError: naming both nodes, where each was declared, and how to fix it.
    """
    session = "<session>"
    shorts = [n.name for n in settings.nodes]
    where_of = {n.name: n.where for n in settings.nodes}
    taken: dict[tuple[str, str], tuple[str, str, str]] = {}
    """(namespace, name) → (platform, node, what the name is). Containers and their kept names
    share Docker's one namespace of container names; networks have their own."""

    def claim(namespace: str, name: str, platform: str, node: str, what: str) -> None:
        other = taken.get((namespace, name))
        if other is None:
            taken[namespace, name] = (platform, node, what)
            return
        o_platform, o_node, o_what = other
        places = [
            f"node {n!r} at {where_of[n]}" for n in dict.fromkeys((o_node, node)) if n and where_of.get(n)
        ]
        places.append(f"platforms from {settings.platforms_source}")
        raise SettingsError(
            f"{_describe(o_platform, o_node)} and {_describe(platform, node)} would have one name: "
            f"{o_what} and {what} are both {name}",
            where="; ".join(places),
            fix="rename one of the two nodes in `nodes:`, or give one platform another name in "
            "`platform_definitions:`. Names are joined with '-' (and '.' becomes '-'), so "
            "'debian-12' + 'x-y' and 'debian-12-x' + 'y' meet",
        )

    kept = "the kept container (--infra-keep)"
    for platform in settings.platforms:
        own = container_name(session, platform.name)
        if shorts:  # the network the platform's named nodes share
            claim("network", own, platform.name, "", "the network")
        else:  # the platform's single node
            claim("container", own, platform.name, "", "the container")
    for platform in settings.platforms:
        for short in shorts:
            claim(
                "container",
                container_name(session, platform.name, short),
                platform.name,
                short,
                "the container",
            )
    for platform in settings.platforms:
        for short in shorts or [""]:
            name = container_name(session, platform.name, short) + reaper.KEPT_SUFFIX
            claim("container", name, platform.name, short, kept)
