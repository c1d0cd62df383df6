"""InfraSession: the one stateful object of a test session (nodes, keep policy, teardown)."""

from __future__ import annotations

import contextlib
import difflib
import os
import threading
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal
from typing import final

import pluggy

from pytest_infranode import convergecache
from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.engine import Engine
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.errors import NodeError
from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.node import Node
from pytest_infranode.node import container_name
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.platforms import PlatformDefinition
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import MaskingSink
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import mask
from pytest_infranode.provisioners.base import secret_values
from pytest_infranode.provisioners.streaming import LineEcho
from pytest_infranode.settings import NodeConfig
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import Settings
from pytest_infranode.settings import converge_order
from pytest_infranode.sharing import SharedDir

DEFAULT_NODE = "default"
"""The key of the single node of a platform in ``infra_nodes`` when ``nodes:`` is not used."""


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


def build_catalog(
    contributions: list[list[Platform] | None], definitions: tuple[PlatformDefinition, ...] = ()
) -> Catalog:
    """Built-ins, then what plugins add, then ``platform_definitions:`` (which may override)."""
    catalog = Catalog()
    for platforms in contributions:
        for platform in platforms or []:
            catalog.add(platform, source="a pytest_infranode_add_platforms hook")
    for definition in definitions:
        catalog.define(definition)
    return catalog


def build_provisioners(contributions: list[list[Provisioner] | None]) -> dict[str, Provisioner]:
    found: dict[str, Provisioner] = {}
    for provisioners in contributions:
        for p in provisioners or []:
            if not isinstance(p, Provisioner):
                raise PluginError(
                    f"{p!r} returned by pytest_infranode_add_provisioners is not a provisioner",
                    fix="give it a `name` and the methods `check(config)` and "
                    "`converge(node, config, output)`",
                )
            if p.name in found:
                raise PluginError(
                    f"two plugins add a provisioner called {p.name!r}: "
                    f"{type(found[p.name]).__module__} and {type(p).__module__}",
                    fix="uninstall one of them, or rename one provisioner",
                )
            found[p.name] = p
    return found


@final
class InfraSession:
    """Owns the nodes of one pytest session.

    Made in ``pytest_configure`` once settings are valid; nodes are made lazily by
    :meth:`node_for`, and all are removed (or kept) by :meth:`teardown`.
    """

    def __init__(
        self,
        settings: Settings,
        hook: pluggy.HookRelay,
        *,
        log_dir: Path,
        say: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.settings = settings
        self.hook = hook
        self.log_dir = log_dir
        self.say = say
        self.echo_line: Callable[[str], None] | None = None
        """Set by the plugin under -s/-v: converge output is shown line by line as it comes."""
        self.session_id = labels.new_session_id()
        self.catalog = build_catalog(hook.pytest_infranode_add_platforms(), settings.platform_definitions)
        self.platforms: list[Platform] = self.catalog.select(
            settings.platforms, where=settings.platforms_source
        )
        self.node_configs: dict[str, NodeConfig] = {n.name: n for n in settings.nodes} or {
            "": NodeConfig(name="")
        }
        """Short name → settings of each node made per platform, in converge order."""
        self.default_node = next(n.name for n in settings.nodes) if settings.nodes else ""
        self.provisioners = build_provisioners(hook.pytest_infranode_add_provisioners())
        for config in self._provisioner_configs():
            if config.name not in self.provisioners:
                raise SettingsError(
                    f"unknown provisioner {config.name!r}",
                    where=config.source.where("provisioner"),
                    fix=f"use one of: {', '.join(sorted(self.provisioners))}, or install the plugin "
                    "that adds it",
                )
        self.provisioner = self.provisioners[settings.provisioner.name]
        self._provisioner_checked = False
        self.engine: Engine | None = None
        self.watchdog: reaper.Watchdog | None = None
        self.nodes: dict[str, Node] = {}
        """Live nodes by :attr:`Target.key` (``debian-12/web``)."""
        self.made: list[Node] = []
        """Every node made in this session, for the summary."""
        self.networks: dict[str, str] = {}
        """Platform name → id of the network its nodes share (only with ``nodes:``)."""
        self.failures: dict[str, InfranodeError] = {}
        self.failed_platforms: set[str] = set()
        self.kept: list[Node] = []
        self.teardown_errors: list[str] = []
        self._lock = threading.RLock()
        self.role: Literal["single", "controller", "worker"] = "single"
        """``controller`` and ``worker`` under pytest-xdist: see :meth:`become_controller`."""
        self.shared: SharedDir | None = None
        self.owner = labels.owner()
        self._kept_names: list[tuple[str, str]] = []
        self._kept_ids: set[str] = set()
        self.idempotence: dict[str, str] = {}
        """Node name → the idempotence check's verdict (with ``--infra-idempotence``)."""
        self._controller_done = False
        self.planned: list[Target] = []
        """Nodes the collected tests will need (see :meth:`plan`): made together in the background."""
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future[Node]] = {}
        self._make_lock = threading.RLock()
        """Held around what nodes made at once share: networks, the watchdog, image builds."""
        self._image_locks: dict[str, threading.Lock] = {}
        self.last_use: dict[str, int] = {}
        """Platform name → position of the last collected test that uses it (see :meth:`done_with`)."""
        self.position = -1
        """Position of the test being run, in the collected order."""
        self._released: set[str] = set()
        """Platforms whose nodes were removed after their last test (see :meth:`done_with`)."""
        self._remover: ThreadPoolExecutor | None = None
        self._removals: list[Future[str | None]] = []

    # pytest-xdist: one node per platform and name for all workers
    def become_controller(self) -> dict[str, str]:
        """Coordinate xdist workers: they share this session id and its nodes; the controller
        owns the watchdog and removes everything at its end.

        :return: what each worker gets in ``workerinput``.
        """
        if self.shared is None:
            self.role = "controller"
            self.shared = SharedDir.create(self.session_id)
        return {
            "infranode_session": self.session_id,
            "infranode_shared": str(self.shared.path),
            "infranode_owner": self.owner,
        }

    def join(self, workerinput: dict[str, Any]) -> None:
        """Run as an xdist worker of the controller that sent ``workerinput``."""
        self.role = "worker"
        self.session_id = str(workerinput["infranode_session"])
        self.shared = SharedDir(Path(workerinput["infranode_shared"]))
        self.owner = str(workerinput["infranode_owner"])

    def _shared_node(self, target: Target) -> Node:
        """Make the node, or attach to the one another worker made (under its file lock)."""
        assert self.shared is not None
        with self.shared.locked(f"node-{target.key}"):
            record = self.shared.read(f"node-{target.key}")
            if record is None:
                # A worker that died while making this node left its container: start afresh.
                self.connect().remove_container(self.node_name(target))
                try:
                    node = self._make_node(target)
                except InfranodeError as err:
                    self.shared.write(
                        f"node-{target.key}",
                        {
                            "error": [err.what, err.where, err.fix, err.detail],
                            "idempotence": self.idempotence.get(self.node_name(target)),
                            **_record(target, None),
                        },
                    )
                    raise
                verdict = self.idempotence.get(node.name)
                self.shared.write(f"node-{target.key}", _record(target, node, verdict))
                return node
        if "error" in record:
            what, where, fix, detail = record["error"]
            raise InfranodeError(what, where=where, fix=fix, detail=detail)
        return self._attach(target, record)

    def _attach(self, target: Target, record: dict[str, Any]) -> Node:
        config = self.node_configs[target.node]
        node = Node(
            self.connect(),
            target.platform,
            session_id=self.session_id,
            image=str(record["image"]),
            short_name=target.node,
            network=container_name(self.session_id, target.platform.name) if self.settings.nodes else None,
            env=config.env,
            ports=config.ports,
            cap_add=config.capabilities,
            groups=config.groups,
            owner=self.owner,
        )
        node.container_id = str(record["container_id"])
        node.image_cached = record.get("cached")
        node.converge_cache = str(record.get("converge_cache") or "")
        node.timings = dict(record.get("timings") or {})
        node.converge_log = str(record.get("converge_log") or "")
        node.state = "converged"
        self.nodes[target.key] = node
        return node

    def _provisioner_configs(self) -> list[ProvisionerConfig]:
        return [self.settings.provisioner] + [
            n.provisioner for n in self.settings.nodes if n.provisioner is not None
        ]

    def config_of(self, node: Node) -> ProvisionerConfig:
        """The provisioner settings of ``node``: its own, else the top-level ones."""
        own = self.node_configs.get(node.short_name)
        return own.provisioner if own is not None and own.provisioner else self.settings.provisioner

    def check_provisioner(self) -> None:
        """Validate the provisioner's options and files (raises SettingsError)."""
        for config in self._provisioner_configs():
            self.provisioners[config.name].check(config)
        self._provisioner_checked = True

    def node_name(self, target: Target) -> str:
        """The container name the node of ``target`` has (or will have)."""
        return container_name(self.session_id, target.platform.name, target.node)

    def select_nodes(self, names: tuple[str, ...] = (), group: str | None = None) -> list[str]:
        """Short names chosen by an ``infra_node`` marker; without one, the default node.

        :raises SettingsError: a name or group that ``nodes:`` does not declare.
        """
        declared = [n for n in self.node_configs if n]
        where = "@pytest.mark.infra_node"
        if (names or group) and not declared:
            raise SettingsError(
                "this test asks for a named node, but the configuration declares no `nodes:`",
                where=where,
                fix="declare them in infranode.yaml: `nodes: {web: {}, db: {}}`",
            )
        chosen = list(names)
        for name in chosen:
            if name not in self.node_configs:
                close = difflib.get_close_matches(name, declared, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SettingsError(
                    f"unknown node {name!r}", where=where, fix=f"{hint}Nodes: {', '.join(declared)}"
                )
        if group is not None:
            members = [n for n, c in self.node_configs.items() if group in c.groups]
            if not members:
                groups = sorted({g for c in self.node_configs.values() for g in c.groups})
                raise SettingsError(
                    f"no node is in group {group!r}",
                    where=where,
                    fix=f"groups: {', '.join(groups) or 'none declared'} (set `groups:` on a node)",
                )
            chosen += [m for m in members if m not in chosen]
        return chosen or [self.default_node]

    def connect(self) -> Engine:
        """Connect to the daemon once, and sweep what expired sessions left there."""
        if self.engine is None:
            self.engine = Engine.connect(self.settings.docker_host)
            removed = (
                [] if self.role == "worker" else reaper.sweep_expired(self.engine, exclude=self.session_id)
            )
            if removed:
                self.say(f"removed {len(removed)} node(s) left by expired sessions: {', '.join(removed)}")
        return self.engine

    def start_watchdog(self) -> None:
        """Start the watchdog (once); an xdist controller starts it for its workers."""
        self._start_watchdog()

    def _start_watchdog(self) -> None:
        if self.watchdog is None and self.role != "worker":  # a worker's controller watches
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.watchdog = reaper.Watchdog(
                self.session_id,
                self.settings.docker_host,
                str(self.log_dir / f"watchdog-{self.session_id}.log"),
                remove_dir=str(self.shared.path) if self.role == "controller" and self.shared else None,
            )

    # parallel bring-up
    @property
    def parallel(self) -> int:
        """How many nodes are made at once: ``--infra-parallel``, else the number of CPUs."""
        return self.settings.parallel or os.cpu_count() or 1

    def plan(self, targets: list[Target]) -> None:
        """Tell the session which nodes the collected tests use; the first :meth:`node_for` then
        starts making all of them (bounded by :attr:`parallel`), in ``depends_on`` order."""
        order = converge_order(self.node_configs) if self.settings.nodes else [""]
        wanted = {t.key for t in targets}
        needed: list[Target] = []
        for platform in {t.platform.name: t.platform for t in targets}.values():
            for name in order:
                if any(f"{platform.name}/{n}" in wanted for n in self._dependents(name)):
                    needed.append(Target(platform, name))
        self.planned = needed

    def _dependents(self, name: str) -> set[str]:
        """``name`` and every node that (transitively) depends on it."""
        found = {name}
        changed = True
        while changed:
            changed = False
            for other, config in self.node_configs.items():
                if other not in found and found & set(config.depends_on):
                    found.add(other)
                    changed = True
        return found

    def _in_parallel(self) -> bool:
        # Under xdist each worker makes the nodes its tests need under the shared file locks,
        # one at a time: workers already run side by side.
        return self.role != "worker" and self.parallel > 1

    def _start_all(self, wanted: Target) -> None:
        """Submit every planned node not yet started (and ``wanted``), dependencies first."""
        if self._pool is None:
            self.connect()
            self._pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="infranode-make")
        order = converge_order(self.node_configs) if self.settings.nodes else [""]
        targets = list(self.planned)
        if wanted.key not in {t.key for t in targets}:
            needs = [n for n in order if wanted.node in self._dependents(n)]
            targets += [Target(wanted.platform, n) for n in needs]
        for target in targets:
            if target.key not in self._futures and target.key not in self.failures:
                self._futures[target.key] = self._pool.submit(self._make_in_background, target)

    def _make_in_background(self, target: Target) -> Node:
        """One node, in a pool thread, after the nodes it depends on (submitted before it)."""
        for dep in self.node_configs[target.node].depends_on:
            future = self._futures.get(Target(target.platform, dep).key)
            try:
                if future is None:
                    raise self.failures[Target(target.platform, dep).key]
                future.result()
            except InfranodeError as err:
                raise NodeError(
                    f"node {target.node} was not made: it depends on node {dep}, which failed",
                    where=f"platform {target.platform.name}",
                    fix=f"see the error of node {dep}",
                    detail=str(err),
                ) from None
        return self._make_node(target)

    def _node_in_parallel(self, target: Target) -> Node:
        with self._lock:
            if target.key in self.failures:
                raise self.failures[target.key]
            self._start_all(target)
            future = self._futures[target.key]
        try:
            return future.result()
        except InfranodeError as err:
            with self._lock:
                self.failures.setdefault(target.key, err)
                self.failed_platforms.add(target.platform.name)
            raise
        except Exception as exc:  # a bug or a plugin's: later tests must not get a half-made node
            with self._lock:
                self.failures.setdefault(
                    target.key,
                    NodeError(
                        f"making node {self.node_name(target)} failed: {exc!r}",
                        where=f"platform {target.platform.name}",
                        fix="see the first error of this node for the traceback",
                    ),
                )
                self.failed_platforms.add(target.platform.name)
            raise

    def wait_for_all(self) -> None:
        """Let nodes still being made finish (before teardown removes them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # removal after a platform's last test
    def done_with(self, platform: Platform) -> None:
        """pytest has finished ``platform``'s session fixtures (it does so when the next test
        needs another platform). If no later test uses the platform, its nodes are removed now,
        side by side with the next tests, instead of at the session's end; nodes that
        ``--infra-keep`` keeps, and nodes still being made, are left to :meth:`teardown`.
        """
        if self.role != "single" or self.last_use.get(platform.name, self.position) >= self.position:
            return
        doomed: list[Node] = []
        with self._lock:
            for key, node in list(self.nodes.items()):
                future = self._futures.get(key)
                if (
                    node.platform.name != platform.name
                    or node.state == "removed"
                    or self.should_keep(node)
                    or (future is not None and not future.done())
                ):
                    continue
                del self.nodes[key]
                doomed.append(node)
            if not doomed:
                return
            self._released.add(platform.name)
        self._start_removing(doomed)

    def _start_removing(self, nodes: list[Node]) -> None:
        """Remove ``nodes`` in the background, side by side (bounded by :attr:`parallel`); with
        ``--infra-parallel=1``, one after another before returning."""
        if self.parallel <= 1:
            self.teardown_errors.extend(e for e in map(self._remove_safely, nodes) if e is not None)
            return
        if self._remover is None:
            self._remover = ThreadPoolExecutor(self.parallel, thread_name_prefix="infranode-remove")
        self._removals += [self._remover.submit(self._remove_safely, node) for node in nodes]

    def _remove_all(self, nodes: list[Node]) -> None:
        """Remove ``nodes`` side by side with any removal still under way, and wait for all of
        them; every failure is recorded.

        Removing a node is mostly the daemon's work (kill, unmount, delete its layer), so several
        at once end sooner than one after another.
        """
        if len(nodes) <= 1 and not self._removals:  # the usual single node: no thread for it
            self.teardown_errors.extend(e for e in map(self._remove_safely, nodes) if e is not None)
        else:
            self._start_removing(nodes)
        if self._remover is not None:
            self._remover.shutdown(wait=True)
            self._remover = None
        self.teardown_errors.extend(e for e in (f.result() for f in self._removals) if e is not None)
        self._removals = []

    def _check_not_released(self, target: Target) -> None:
        if target.platform.name in self._released:
            raise NodeError(
                f"node {self.node_name(target)} was removed after the last test that uses platform "
                f"{target.platform.name}, and a test of it ran later",
                where=f"platform {target.platform.name}",
                fix="a plugin changed the order of the tests after collection; run without it, "
                "or keep the nodes to the end with --infra-keep=always",
            )

    # nodes
    def node_for(self, platform: Platform, short_name: str = "") -> Node:
        """The converged node ``short_name`` of ``platform``, made on first use after the
        nodes it depends on.

        :raises InfranodeError: the same error again for every test of a node that could not
            be made or converged.
        """
        target = Target(platform, short_name)
        self._check_not_released(target)
        if self._in_parallel():
            return self._node_in_parallel(target)
        with self._lock:
            if target.key in self.failures:
                raise self.failures[target.key]
            node = self.nodes.get(target.key)
            if node is not None:
                return node
            try:
                for dep in self.node_configs[short_name].depends_on:
                    self._dependency(platform, short_name, dep)
                if self.role == "worker":
                    return self._shared_node(target)
                return self._make_node(target)
            except InfranodeError as err:
                self.failures[target.key] = err
                self.failed_platforms.add(platform.name)
                raise
            except Exception as exc:  # a bug or a plugin's: later tests must not get a half-made node
                self.failures[target.key] = NodeError(
                    f"making node {self.node_name(target)} failed: {exc!r}",
                    where=f"platform {platform.name}",
                    fix="see the first error of this node for the traceback",
                )
                self.failed_platforms.add(platform.name)
                raise

    def _dependency(self, platform: Platform, short_name: str, dep: str) -> None:
        try:
            self.node_for(platform, dep)
        except InfranodeError as err:
            raise NodeError(
                f"node {short_name} was not made: it depends on node {dep}, which failed",
                where=f"platform {platform.name}",
                fix=f"see the error of node {dep}",
                detail=str(err),
            ) from None

    def nodes_of(self, platform: Platform) -> dict[str, Node]:
        """Every node of ``platform`` by short name (converged in order); see ``infra_nodes``."""
        return {(short or DEFAULT_NODE): self.node_for(platform, short) for short in self.node_configs}

    def find_node(self, target: Target) -> Node | None:
        """The node of ``target`` if it was made (live, kept or removed)."""
        name = self.node_name(target)
        return next((n for n in reversed(self.made) if n.name.startswith(name)), None)

    def _network_for(self, platform: Platform, engine: Engine) -> str | None:
        """The network the nodes of ``platform`` share (made with ``nodes:`` only)."""
        if not self.settings.nodes:
            return None
        name = container_name(self.session_id, platform.name)
        if platform.name in self.networks:
            return name
        if self.shared is None:
            self.networks[platform.name] = engine.create_network(
                name, labels.node_labels(self.session_id, platform.name, name, self.owner)
            )
            return name
        with self.shared.locked(f"network-{platform.name}"):  # one network for all workers
            record = self.shared.read(f"network-{platform.name}")
            if record is None:
                record = {
                    "id": engine.create_network(
                        name, labels.node_labels(self.session_id, platform.name, name, self.owner)
                    )
                }
                self.shared.write(f"network-{platform.name}", record)
        self.networks[platform.name] = str(record["id"])
        return name

    def _make_node(self, target: Target) -> Node:
        platform = target.platform
        config = self.node_configs[target.node]
        with self._make_lock:
            engine = self.connect()
        started = time.monotonic()
        with self._image_lock(platform.name):  # nodes of one platform made at once: one build
            image, cached = engine.prepared_image(
                platform, self.say, registry_mirror=self.settings.registry_mirror, pull=self.settings.pull
            )
        with self._make_lock:
            self._start_watchdog()
            network = self._network_for(platform, engine)
        node = Node(
            engine,
            platform,
            session_id=self.session_id,
            image=image,
            short_name=target.node,
            network=network,
            env=config.env,
            ports=config.ports,
            cap_add=config.capabilities,
            groups=config.groups,
            owner=self.owner,
        )
        node.image_cached = cached
        node.timings["image"] = time.monotonic() - started
        if self._reuse_or_label(node, target, engine, image):
            with self._make_lock:
                self.nodes[target.key] = node
                self.made.append(node)
            node.timings["ready"] = time.monotonic() - started
            return node
        cache_key = self._converge_cache(node, target, engine, image)
        with self._make_lock:
            self.nodes[target.key] = node
            self.made.append(node)
        options = create_kwargs(node.spec, engine.info)
        custom = self.hook.pytest_infranode_container_options(node=node, options=dict(options))
        node.create(custom if custom is not None else options)
        self.say(f"{platform.name}: node {node.name} created, booting")
        node.start(boot_timeout=self.settings.boot_timeout)
        if node.converge_cache == "hit":
            node.state = "converged"  # the converge is in the image; after_converge hooks still run
            self.hook.pytest_infranode_after_converge(
                node=node, result=ConvergeResult(0, "(converge cache hit: not run)", changed=False)
            )
        else:
            self._converge(node)
            if cache_key is not None:
                self._save_converged(node, engine, cache_key)
        if config.side_effect:
            self._side_effect(node, config.side_effect)
        node.timings["ready"] = time.monotonic() - started
        return node

    def _reuse_or_label(self, node: Node, target: Target, engine: Engine, prepared_id: str) -> bool:
        """With ``--infra-reuse``, take over a kept node whose converge inputs are unchanged.

        Nodes that may be kept carry the key of their converge (the converge cache's key) so
        that a later session can recognise them. Nodes on a session network (``nodes:``) are
        not taken over: their network went with their session.
        """
        if not self.settings.reuse and self.settings.keep == "never":
            return False
        config = self.config_of(node)
        key = convergecache.converge_key(
            platform=node.platform,
            recipe=engine.recipe_key(node.platform) or "",
            prepared_id=prepared_id,
            provisioner=self.provisioners[config.name],
            config=config,
            node=self.node_configs[target.node],
        )
        node.labels[labels.CONVERGE] = key.key
        if not self.settings.reuse or node.network:
            return False
        with self._make_lock:
            taken = {n.container_id for n in self.made}
            for found in engine.list_containers([f"{labels.CONVERGE}={key.key}"]):
                name = reaper.container_name(found)
                if (
                    name.endswith(reaper.KEPT_SUFFIX)
                    and found.get("State") == "running"
                    and found["Id"] not in taken
                ):
                    node.container_id = str(found["Id"])
                    node.name = name
                    node.state = "converged"
                    node.reused = True
                    self.say(f"{node.platform.name}: reusing kept node {name} (converge inputs unchanged)")
                    return True
        self.say(f"{node.platform.name}: no kept node with unchanged converge inputs to reuse")
        return False

    def _image_lock(self, platform_name: str) -> threading.Lock:
        with self._make_lock:
            return self._image_locks.setdefault(platform_name, threading.Lock())

    def _converge_cache(
        self, node: Node, target: Target, engine: Engine, prepared_id: str
    ) -> convergecache.ConvergeKey | None:
        """With ``--infra-cache=converge``: start ``node`` from its converged image if one has
        the key of this converge (``node.converge_cache = "hit"``); else the key to save under."""
        if self.settings.cache != "converge":
            return None
        config = self.config_of(node)
        why_not = convergecache.uncacheable(config, self.settings.idempotence)
        if why_not is not None:
            node.converge_cache = "off"
            self.say(f"{node.platform.name}: converge cache not used for {node.name}: {why_not}")
            return None
        key = convergecache.converge_key(
            platform=node.platform,
            recipe=engine.recipe_key(node.platform) or "",
            prepared_id=prepared_id,
            provisioner=self.provisioners[config.name],
            config=config,
            node=self.node_configs[target.node],
        )
        found, why = convergecache.lookup(engine, key)
        if found is not None:
            node.image = found
            node.converge_cache = "hit"
            self.say(f"{node.platform.name}: converge cache hit for {node.name} ({why}): converge skipped")
            return None
        node.converge_cache = "miss"
        self.say(f"{node.platform.name}: converge cache miss for {node.name} ({why})")
        return key

    def _save_converged(self, node: Node, engine: Engine, key: convergecache.ConvergeKey) -> None:
        started = time.monotonic()
        try:
            convergecache.save(engine, node.container_id, key, node.platform.name)
        except InfranodeError as err:  # the node is fine; only the next run will converge again
            warnings.warn(
                InfranodeWarning(f"converge cache: could not save {node.name}: {err.what}"), stacklevel=1
            )
            return
        node.timings["cache_save"] = time.monotonic() - started
        self.say(f"{node.platform.name}: saved the converged {node.name} as image key {key.key}")

    def _side_effect(self, node: Node, commands: tuple[str, ...]) -> None:
        """Molecule's ``side_effect``: commands run in the node after its converge."""
        log_path = Path(node.converge_log)
        started = time.monotonic()
        secrets = secret_values(self.config_of(node).options.get("secret_env"), os.environ)
        with self._log_sink(node, log_path, secrets, append=True) as output:
            for command in commands:
                output(f"--- side_effect: {command}\n".encode())
                result = node.run_argv(["/bin/sh", "-c", command], on_output=output)
                if result.exit_status != 0:
                    output.flush()
                    node.state = "failed"
                    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
                    err = ConvergeError(
                        f"side_effect of {node.name} failed: `{command}` exited with status "
                        f"{result.exit_status}",
                        where=f"{node.where}; full log: {log_path}",
                        fix="fix the command in `side_effect:` of node "
                        f"{node.short_name} in {self.settings.config_file or 'the configuration'}",
                        exit_status=result.exit_status,
                        log_tail=mask(tail, secrets),
                    )
                    self._failed(node)
                    raise err
        node.timings["side_effect"] = time.monotonic() - started

    def _failed(self, node: Node) -> None:
        """Save the container log's tail of a failed node, and remove it unless it is kept."""
        node.log_tail = node.logs(30)
        if self.settings.keep == "never":
            self._remove(node)

    def _converge(self, node: Node) -> None:
        config = self.config_of(node)
        provisioner = self.provisioners[config.name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{node.name}.converge.log"
        started = time.monotonic()
        self.say(f"{node.platform.name}: converging {node.name} with {provisioner.name} (log: {log_path})")
        secrets = secret_values(config.options.get("secret_env"), os.environ)
        with self._log_sink(node, log_path, secrets, append=False) as output:
            # A converge past its timeout is ended by stopping the node: that works for every
            # provisioner, whether it runs in the node or on the runner.
            timer = threading.Timer(self.settings.converge_timeout, self._converge_timed_out, (node,))
            timer.daemon = True
            timer.start()
            try:
                result: ConvergeResult | None = self.hook.pytest_infranode_converge(
                    node=node, provisioner=provisioner, config=config, output=output
                )
            except InfranodeError:
                if not node.timed_out:
                    raise
                result = None
            finally:
                timer.cancel()
        node.converge_log = str(log_path)
        node.timings["converge"] = time.monotonic() - started
        if result is None or not result.ok or node.timed_out:
            node.state = "failed"
            status = None if result is None else result.exit_status
            how = (
                f"ran longer than the converge timeout ({self.settings.converge_timeout:g} s) and was stopped"
                if node.timed_out
                else f"exited with status {status}"
            )
            tail = mask(result.tail(), secrets) if result else ""
            if not tail and log_path.exists():
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
            err = ConvergeError(
                f"converge of {node.name} failed: the {provisioner.name} provisioner {how}",
                where=f"{node.where}; full log: {log_path}",
                fix=f"fix the provisioner's input ({config.source.where('provisioner')}); "
                "keep the node for a look with --infra-keep=failure",
                exit_status=status,
                log_tail=tail,
            )
            self._failed(node)
            raise err
        if self.settings.idempotence:
            self._check_idempotence(node, provisioner, config, log_path, secrets)
        node.state = "converged"
        self.hook.pytest_infranode_after_converge(node=node, result=result)

    @contextlib.contextmanager
    def _log_sink(
        self, node: Node, log_path: Path, secrets: list[str], *, append: bool
    ) -> Iterator[MaskingSink]:
        """Where converge, idempotence and side-effect output goes: secrets masked, written to the
        node's log (readable by us only: it may describe the machine), shown live under -s/-v."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        echo = self._echo(node)
        with open(os.open(log_path, flags, 0o600), "ab" if append else "wb") as log_file:

            def write(chunk: bytes) -> None:
                log_file.write(chunk)
                log_file.flush()
                if echo is not None:
                    echo(chunk)

            output = MaskingSink(write, secrets)
            try:
                yield output
            finally:
                output.flush()
                if echo is not None:
                    echo.flush()

    def _echo(self, node: Node) -> LineEcho | None:
        if self.echo_line is None:
            return None
        return LineEcho(self.echo_line, f"  {node.short_name or node.platform.name} | ")

    def _check_idempotence(
        self,
        node: Node,
        provisioner: Provisioner,
        config: ProvisionerConfig,
        log_path: Path,
        secrets: list[str],
    ) -> None:
        """Converge a second time; fail the node if that changed anything, showing what."""
        self.say(f"{node.platform.name}: converging {node.name} again to check idempotence")
        started = time.monotonic()
        with self._log_sink(node, log_path, secrets, append=True) as output:
            output(b"\n--- infranode: second converge (idempotence check) ---\n")
            result: ConvergeResult | None = self.hook.pytest_infranode_converge(
                node=node, provisioner=provisioner, config=config, output=output
            )
        node.timings["idempotence"] = time.monotonic() - started
        where = f"{node.where}; full log: {log_path}"
        verdict = (
            "second converge failed"
            if result is None or not result.ok
            else "not checked"
            if result.changed is None
            else "not idempotent"
            if result.changed
            else "ok"
        )
        self.idempotence[node.name] = verdict  # for the summary table
        if result is None or not result.ok:
            node.state = "failed"
            err = ConvergeError(
                f"the second converge of {node.name} (idempotence check) failed: the "
                f"{provisioner.name} provisioner exited with status {result.exit_status if result else None}",
                where=where,
                fix="a converge must succeed when run again on a converged node; keep the node for a "
                "look with --infra-keep=failure",
                exit_status=result.exit_status if result else None,
                log_tail=mask(result.tail(), secrets) if result else "",
            )
            self._failed(node)
            raise err
        if result.changed is None:
            warnings.warn(
                InfranodeWarning(
                    f"--infra-idempotence: the {provisioner.name} provisioner cannot tell whether a "
                    f"converge changed anything, so {node.name} was converged twice but not checked"
                ),
                stacklevel=1,
            )
            return
        if result.changed:
            node.state = "failed"
            changes = [mask(c, secrets) for c in result.changes] or ["(the provisioner did not say what)"]
            err = ConvergeError(
                f"{node.name} is not idempotent: the second converge with {provisioner.name} changed "
                + (f"{len(result.changes)} thing(s)" if result.changes else "something"),
                where=where,
                fix="make the converge idempotent (a task that always reports a change, a file "
                "rewritten every run …), or drop --infra-idempotence",
                exit_status=result.exit_status,
            )
            err.detail = "--- what the second converge changed ---\n" + "\n".join(changes)
            self._failed(node)
            raise err

    def _converge_timed_out(self, node: Node) -> None:
        node.timed_out = True
        if self.engine is not None and node.container_id:
            self.engine.kill_container(node.container_id)

    @hookimpl(trylast=True)
    def pytest_infranode_converge(
        self, node: Node, provisioner: Provisioner, config: ProvisionerConfig, output: OutputSink
    ) -> ConvergeResult:
        if not self._provisioner_checked:
            provisioner.check(config)
        return provisioner.converge(node, config, output)

    # keep policy and teardown
    def record_failure(self, platform_name: str) -> None:
        self.failed_platforms.add(platform_name)
        if self.role == "worker" and self.shared is not None:
            self.shared.mark(f"failed-{platform_name}")

    def should_keep(self, node: Node) -> bool:
        keep = self.settings.keep
        return keep == "always" or (keep == "failure" and node.platform.name in self.failed_platforms)

    def _remove(self, node: Node) -> None:
        try:
            self.hook.pytest_infranode_before_remove(node=node)
        except Exception as exc:  # a plugin's failure must not leave the node behind
            self.teardown_errors.append(f"{node.name}: pytest_infranode_before_remove failed: {exc}")
        node.remove()
        node.outcome = "removed"

    def _remove_safely(self, node: Node) -> str | None:
        """Remove ``node``; a failure is returned as a line for the report (teardown keeps going)."""
        try:
            self._remove(node)
        except Exception as exc:
            return f"{node.name}: {exc}"
        return None

    def teardown(self) -> None:
        """Remove every node (except kept ones) and anything else labelled with this session.

        Keeps going through failures and records them in :attr:`teardown_errors`. An xdist worker
        leaves the nodes to its controller, which removes (or keeps) them all at its end.
        """
        if self.role == "worker":
            return
        self.wait_for_all()
        if self.role == "controller" and not self._controller_done:
            self._controller_done = True
            self._controller_teardown()
        keep_ids: set[str] = set(self._kept_ids)
        doomed: list[Node] = []
        for node in list(self.nodes.values()):
            if node.state == "removed":
                continue
            if self.should_keep(node) and node.container_id:
                keep_ids.add(node.container_id)
                self._keep(node)
                continue
            doomed.append(node)
        self._remove_all(doomed)
        if self.engine is not None:
            try:
                reaper.sweep(self.engine, session_id=self.session_id, keep=frozenset(keep_ids))
            except Exception as exc:
                self.teardown_errors.append(f"sweep of session {self.session_id}: {exc}")
            for platform_name, network_id in list(self.networks.items()):
                try:  # the sweep removed it already, unless a kept node still uses it
                    if self.engine.remove_network(network_id):
                        del self.networks[platform_name]
                except Exception as exc:
                    self.teardown_errors.append(f"network of {platform_name}: {exc}")
        self.nodes = {k: n for k, n in self.nodes.items() if n.state != "removed"}
        if self.watchdog is not None:
            self.watchdog.release()
            self.watchdog = None

    def _keep(self, node: Node) -> None:
        """Leave the node running for a look; renamed so that the automatic sweep spares it."""
        node.close()  # its exec channel: the container stays, the attached socket must not
        kept_name = node.name + reaper.KEPT_SUFFIX
        try:
            if self.engine is not None and not node.name.endswith(reaper.KEPT_SUFFIX):
                self.engine.rename_container(node.container_id, kept_name)
                node.name = kept_name
        except InfranodeError as exc:
            self.teardown_errors.append(f"{node.name}: could not mark as kept: {exc.what}")
        node.outcome = "kept"
        self.kept.append(node)

    def _controller_teardown(self) -> None:
        """Keep the workers' nodes that the keep policy names; the sweep removes the rest."""
        if self.engine is None or self.shared is None or self.settings.keep == "never":
            return
        failed = self.shared.flags("failed-")
        try:
            containers = self.engine.list_containers([f"{labels.SESSION}={self.session_id}"])
        except InfranodeError as exc:
            self.teardown_errors.append(f"listing the nodes of session {self.session_id}: {exc.what}")
            return
        for c in containers:
            platform = str((c.get("Labels") or {}).get(labels.PLATFORM, ""))
            if self.settings.keep == "always" or platform in failed:
                name = reaper.container_name(c)
                try:
                    self.engine.rename_container(str(c["Id"]), name + reaper.KEPT_SUFFIX)
                    self._kept_names.append((name + reaper.KEPT_SUFFIX, platform))
                    self._kept_ids.add(str(c["Id"]))
                except InfranodeError as exc:
                    self.teardown_errors.append(f"{name}: could not mark as kept: {exc.what}")

    def _table_nodes(self) -> list[Node]:
        if self.role != "controller" or self.shared is None:
            return self.made
        nodes = []
        by_name = {p.name: p for p in self.catalog}
        kept = {name.removesuffix(reaper.KEPT_SUFFIX) for name, _ in self._kept_names}
        for record in self.shared.records("node-"):
            platform = by_name.get(str(record.get("platform")))
            if platform is None:
                continue
            node = Node(
                self.engine,  # type: ignore[arg-type]  # never used: a row of the summary only
                platform,
                session_id=self.session_id,
                image=str(record.get("image") or ""),
                short_name=str(record.get("node") or ""),
            )
            node.image_cached = record.get("cached")
            node.converge_cache = str(record.get("converge_cache") or "")
            node.timings = dict(record.get("timings") or {})
            if record.get("idempotence"):
                self.idempotence[node.name] = str(record["idempotence"])
            node.state = "failed" if "error" in record else "converged"
            node.outcome = "kept" if node.name in kept else "removed"
            if "error" in record:
                what = str(record["error"][0]) if record["error"] else "failed"
                self.failures.setdefault(Target(platform, node.short_name).key, InfranodeError(what))
            nodes.append(node)
        return nodes

    def node_table(self) -> list[str]:
        """One line per node made in this session, for the terminal summary."""
        idempotence = self.settings.idempotence
        rows = [["platform", "node", "image", "cache", "ready", "converge", "result"]]
        if idempotence:
            rows[0].insert(6, "idempotence")
        converge_cache = self.settings.cache == "converge"
        if converge_cache:
            rows[0].insert(4, "converge cache")
        for node in self._table_nodes():
            image = node.image.removeprefix("sha256:")[:12]
            cache = {True: "hit", False: "miss", None: "-"}[node.image_cached]
            result = node.outcome or node.state
            failure = self.failures.get(Target(node.platform, node.short_name).key)
            failed = failure is not None
            if failed:
                result = f"failed, {node.outcome or 'not removed'}"
            row = [
                node.platform.name,
                node.name,
                image,
                cache,
                _seconds(node.timings.get("ready")),
                _seconds(node.timings.get("converge")),
                result,
            ]
            if idempotence:
                name = self.node_name(Target(node.platform, node.short_name))
                row.insert(6, self.idempotence.get(name, "-"))
            if converge_cache:
                row.insert(4, node.converge_cache or "-")
            rows.append(row)
        if len(rows) == 1:
            return []
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]

    def summary_lines(self) -> list[str]:
        lines = [
            f"kept {name} ({platform}): enter it with `infranode login {name}` "
            f"(or docker exec -it {name} bash); remove it with `infranode cleanup`"
            for name, platform in self._kept_names
        ]
        for node in self.kept:
            lines.append(
                f"kept {node.name} ({node.platform.name}): enter it with `infranode login {node.name}` "
                f"(or docker exec -it {node.name} bash); remove it with `infranode cleanup`"
            )
        lines.extend(f"teardown problem: {e}" for e in self.teardown_errors)
        return lines

    def describe_nodes(self) -> list[dict[str, Any]]:
        return [
            {"name": n.name, "platform": n.platform.name, "state": n.state, **n.timings}
            for n in self.nodes.values()
        ]


def _record(target: Target, node: Node | None, idempotence: str | None = None) -> dict[str, Any]:
    """What a worker tells the others (and the controller) about a node it made."""
    base: dict[str, Any] = {"platform": target.platform.name, "node": target.node, "worker": os.getpid()}
    if node is None:
        return base
    return {
        **base,
        "container_id": node.container_id,
        "image": node.image,
        "cached": node.image_cached,
        "converge_cache": node.converge_cache,
        "timings": node.timings,
        "converge_log": node.converge_log,
        "idempotence": idempotence,
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
