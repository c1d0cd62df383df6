"""Making one node, step by step: prepared image, network, a kept node to reuse or a converged
image to start from, container, boot, converge, ``side_effect:``. When to make which node is
``bringup.py``'s; the converge itself is ``converge.py``'s."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import final

import pluggy

from pytest_infranode import claims
from pytest_infranode import convergecache
from pytest_infranode import interrupt
from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.converge import Converger
from pytest_infranode.engine import Engine
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.errors import KernelWithoutIPv6
from pytest_infranode.errors import NodeError
from pytest_infranode.keep import KeepPolicy
from pytest_infranode.node import Node
from pytest_infranode.node import container_name
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.removal import Remover
from pytest_infranode.settings import Settings
from pytest_infranode.sharing import NodeRecord
from pytest_infranode.sharing import SharedDir
from pytest_infranode.sharing import SharedNodes
from pytest_infranode.targets import Identity
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import Target


@final
class NodeFactory:
    """Makes the nodes of one session (from any thread of the bring-up pool)."""

    def __init__(
        self,
        settings: Settings,
        hook: pluggy.HookRelay,
        *,
        identity: Identity,
        layout: NodeLayout,
        provisioners: dict[str, Provisioner],
        converger: Converger,
        keep: KeepPolicy,
        remover: Remover,
        connect: Callable[[], Engine],
        start_watchdog: Callable[[], None],
        register: Callable[[Target, Node, bool], None],
        taken: Callable[[], set[str]],
        say: Callable[[str], None],
        inventory_of: Callable[[Platform], Path] | None = None,
        cancel: interrupt.Cancel | None = None,
    ) -> None:
        self.settings = settings
        self.cancel = cancel if cancel is not None else interrupt.Cancel()
        """The session's interrupt: checked between the steps of making a node."""
        self.inventory_of = inventory_of
        """Where the inventory of a platform's nodes converged in one run is written."""
        self.hook = hook
        self.identity = identity
        self.layout = layout
        self.provisioners = provisioners
        self.converger = converger
        self.keep = keep
        self.remover = remover
        self.connect = connect
        self.start_watchdog = start_watchdog
        self.register = register
        self.taken = taken
        """Container ids of the nodes made so far (a kept node is taken over once)."""
        self.say = say
        self.shared = _shared_nodes(identity)
        self.networks: dict[str, str] = {}
        """Platform name → id of the network its nodes share (only with ``nodes:``)."""
        self._lock = threading.RLock()
        """Held around what nodes made at once share: networks, the watchdog, image builds."""
        self._image_locks: dict[str, threading.Lock] = {}

    def make(self, target: Target) -> Node:
        """The converged node of ``target``; under xdist, made once for all the workers."""
        if self.shared is None:
            return self._make(target)
        return self.shared.node(
            target.key,
            make=lambda: self._make(target),
            attach=lambda record: self._attach(target, record),
            failed=lambda err: self._record(target, error=err),
            made=lambda node: self._record(target, node=node),
            start_afresh=lambda: self.connect().remove_container(self.identity.node_name(target)),
        )

    def _new_node(self, target: Target, engine: Engine, image: str, *, network: str | None) -> Node:
        config = self.layout.configs[target.node]
        return Node(
            engine,
            target.platform,
            session_id=self.identity.session_id,
            image=image,
            short_name=target.node,
            network=network,
            env=config.env,
            ports=config.ports,
            cap_add=config.capabilities,
            sysctls=config.sysctls,
            groups=config.groups,
            owner=self.identity.owner,
            hostname=config.hostname,
        )

    def _make(self, target: Target) -> Node:
        platform = target.platform
        with self._lock:
            engine = self.connect()
        started = time.monotonic()
        image, cached = self._prepared_image(engine, platform)
        with self._lock:
            self.start_watchdog()
            network = self._network_for(platform, engine)
        node = self._new_node(target, engine, image, network=network)
        node.image_cached = cached
        node.record_time("image", time.monotonic() - started)
        config = self.layout.provisioner_of(target.node)
        provisioner = self.provisioners[config.name]
        key = self._converge_key(target, engine, image)
        if key is not None and (self.settings.reuse or self.settings.keep != "never"):
            node.label_converge_key(key.key)  # a later session may take this node over
            if self._reuse(node, engine, key):
                self.register(target, node, True)
                node.record_time("ready", time.monotonic() - started)
                return node
        save_as = self._converge_cache(node, engine, key)
        self.register(target, node, True)
        self._create_and_boot(node, engine)
        try:
            self.cancel.check(f"the converge of {node.name}")
            if node.converge_cache == "hit":
                self.converger.skipped(node)
            else:
                with interrupt.phase(f"the converge of {node.name}"):
                    self.converger.converge(node, provisioner, config)
                if save_as is not None and not node.bare:
                    self._save_converged(node, engine, save_as)
            self.cancel.check(f"the side effect of {node.name}")
            with interrupt.phase(f"the side effect of {node.name}"):
                self.converger.provisioner_side_effect([node], provisioner, config, inventory=None)
            side_effect = self.layout.configs[target.node].side_effect
            if side_effect:
                self.cancel.check(f"the side effect of {node.name}")
                with interrupt.phase(f"the side effect of {node.name}"):
                    self.converger.side_effect(node, side_effect, config)
        except InfranodeError:
            self.cancel.check()  # what failed was stopped by the interrupt: no verdict on it
            if node.state == "failed":  # the one place a failed converge meets the keep policy
                self.keep.after_failure(node, self.remover.remove)
            raise
        node.record_time("ready", time.monotonic() - started)
        return node

    def _prepared_image(self, engine: Engine, platform: Platform) -> tuple[str, bool]:
        """The platform's prepared image (nodes of one platform made at once: one build)."""
        with self._image_lock(platform.name), interrupt.phase(f"the image supply of {platform.name}"):
            self.cancel.check(f"the image supply of {platform.name}")
            found = engine.prepared_image(
                platform, self.say, registry_mirror=self.settings.registry_mirror, pull=self.settings.pull
            )
        self.cancel.check(f"the nodes of {platform.name}")
        return found

    def _create_and_boot(self, node: Node, engine: Engine) -> None:
        """Create the container of registered ``node`` (the container options hook may change
        it) and wait for its boot; an interrupt stops it between the steps (the teardown
        removes the container)."""
        self.cancel.check(f"the creation of {node.name}")
        self._create(node, engine)
        self.say(f"{node.platform.name}: node {node.name} created, booting")
        try:
            with interrupt.phase(f"the boot wait of {node.name}"):
                self.cancel.check(f"the boot of {node.name}")
                try:
                    node.start(boot_timeout=self.settings.boot_timeout)
                except KernelWithoutIPv6 as exc:
                    if exc.key in node.sysctls:
                        raise  # the node's own `sysctls:` asks for it: only the user can choose
                    # A default (or a container options hook) asked for it; the engine now
                    # leaves the IPv6 defaults out. Once: a hook that adds it again fails here.
                    self.say(
                        f"{node.platform.name}: the daemon's kernel has no IPv6 ({exc.key} cannot be "
                        f"made): node {node.name} is made again without ::1 on its loopback"
                    )
                    node.remove()
                    self._create(node, engine)
                    node.start(boot_timeout=self.settings.boot_timeout)
        except InfranodeError:
            self.cancel.check()  # the teardown removed the container under the boot wait
            raise

    def _create(self, node: Node, engine: Engine) -> None:
        """Create the container of ``node`` from its request, as the container options hook
        may change it."""
        options = create_kwargs(node.spec, engine.info)
        custom = self.hook.pytest_infranode_container_options(node=node, options=dict(options))
        node.create(custom if custom is not None else options)

    def make_group(self, group: tuple[Target, ...]) -> dict[str, Node | InfranodeError]:
        """The nodes of ``group``, converged in one run; under xdist, made once for all the
        workers (by the first one that needs one of them)."""
        if self.shared is None:
            return self._make_group(group)
        by_key = {t.key: t for t in group}
        return self.shared.group(
            list(by_key),
            make=lambda: self._make_group(group),
            attach=lambda key, record: self._attach(by_key[key], record),
            failed=lambda key, err: self._record(by_key[key], error=err),
            made=lambda key, node: self._record(by_key[key], node=node),
            start_afresh=lambda key: self.connect().remove_container(self.identity.node_name(by_key[key])),
        )

    def _make_group(self, group: tuple[Target, ...]) -> dict[str, Node | InfranodeError]:
        """The nodes of ``group`` (one platform, or the platforms of a span, see
        :meth:`NodeLayout.span`; one provisioner settings) booted side by side on one network,
        then converged in one run over an inventory of all of them, then each one's
        ``side_effect:``. The run's error is every node's; a node that did not boot fails
        alone, and the others are then not converged (their run would miss a host)."""
        platform = group[0].platform
        config = self.layout.provisioner_of(group[0].node)
        provisioner = self.provisioners[config.name]
        with self._lock:
            engine = self.connect()
        started = time.monotonic()
        images: dict[str, tuple[str, bool]] = {}
        for target in group:  # each platform's image, once
            if target.platform.name not in images:
                images[target.platform.name] = self._prepared_image(engine, target.platform)
        with self._lock:
            self.start_watchdog()
            network = self._network_for(platform, engine)
        took = time.monotonic() - started

        if self.settings.cache == "converge":
            self.say(
                f"{platform.name}: --infra-cache=converge is not used for nodes "
                f"{', '.join(t.node for t in group)}: {convergecache.GROUP_RUN}"
            )

        def boot(target: Target) -> Node:
            image, cached = images[target.platform.name]
            node = self._new_node(target, engine, image, network=network)
            node.image_cached = cached
            node.record_time("image", took)
            if self.settings.cache == "converge":
                node.use_converge_cache("off")
            self.register(target, node, True)
            self._create_and_boot(node, engine)
            return node

        outcome: dict[str, Node | InfranodeError] = {}
        size = max(1, min(len(group), self.settings.parallel or os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="infranode-boot") as pool:
            booting = {t.key: pool.submit(self.cancel.wrap(boot), t) for t in group}
        for key, future in booting.items():
            try:
                outcome[key] = future.result()
            except InfranodeError as err:
                outcome[key] = err
        self.cancel.check(f"the converge of the nodes of {platform.name}")
        broken = [t.node for t in group if not isinstance(outcome[t.key], Node)]
        if broken:
            for target in group:
                if isinstance(outcome[target.key], Node):
                    outcome[target.key] = NodeError(
                        f"node {target.node} was not converged: it is converged in one run with "
                        f"node(s) {', '.join(broken)}, which could not be made",
                        where=f"platform {platform.name}",
                        fix=f"see the error of node {broken[0]}",
                    )
            return outcome
        nodes = [n for n in outcome.values() if isinstance(n, Node)]
        assert self.inventory_of is not None
        names = ", ".join(n.name for n in nodes)
        try:
            with interrupt.phase(f"the converge of {names}"):
                self.converger.converge_together(
                    nodes,
                    provisioner,
                    config,
                    levels=self.layout.levels([t.node for t in group]),
                    inventory=self.inventory_of(platform),
                    log_name=container_name(self.identity.session_id, self.layout.home(platform.name)),
                )
            with interrupt.phase(f"the side effect of {names}"):
                self.converger.provisioner_side_effect(
                    nodes, provisioner, config, inventory=self.inventory_of(platform)
                )
        except InfranodeError as err:
            self.cancel.check()
            for node in nodes:
                if node.state == "failed":
                    self.keep.after_failure(node, self.remover.remove)
            return {t.key: err for t in group}
        for target, node in zip(group, nodes, strict=True):
            side_effect = self.layout.configs[target.node].side_effect
            try:
                if side_effect:
                    self.cancel.check(f"the side effect of {node.name}")
                    with interrupt.phase(f"the side effect of {node.name}"):
                        self.converger.side_effect(node, side_effect, config)
            except InfranodeError as err:
                self.cancel.check()
                if node.state == "failed":
                    self.keep.after_failure(node, self.remover.remove)
                outcome[target.key] = err
                continue
            node.record_time("ready", time.monotonic() - started)
        return outcome

    def _converge_key(
        self, target: Target, engine: Engine, prepared_id: str
    ) -> convergecache.ConvergeKey | None:
        """The key of this node's converge, when something needs it: the converge cache, or
        nodes that may be kept (so that a later session recognises them) or reused."""
        wanted = self.settings.reuse or self.settings.keep != "never"
        if self.settings.cache == "converge" and self._why_uncacheable(target) is None:
            wanted = True
        if not wanted:
            return None
        config = self.layout.provisioner_of(target.node)
        return convergecache.converge_key(
            platform=target.platform,
            recipe=engine.recipe_key(target.platform) or "",
            prepared_id=prepared_id,
            provisioner=self.provisioners[config.name],
            config=config,
            node=self.layout.configs[target.node],
        )

    def _why_uncacheable(self, target: Target) -> str | None:
        return convergecache.uncacheable(self.layout.provisioner_of(target.node), self.settings.idempotence)

    def _reuse(self, node: Node, engine: Engine, key: convergecache.ConvergeKey) -> bool:
        """With ``--infra-reuse``, take over a kept node whose converge inputs are unchanged.

        Nodes on a session network (``nodes:``) are not taken over: their network went with
        their session.
        """
        if not self.settings.reuse or node.network:
            return False
        in_use = []
        with self._lock:
            taken = self.taken()
            for found in engine.list_containers([f"{labels.CONVERGE}={key.key}"]):
                name = found.name
                if not (name.endswith(reaper.KEPT_SUFFIX) and found.state == "running"):
                    continue
                if found.id in taken:
                    continue
                # Claimed before it is taken over: of sessions reaching for it at once, one wins.
                if not claims.claim(
                    engine, found.id, session_id=self.identity.session_id, owner=self.identity.owner
                ):
                    in_use.append(name)
                    continue
                node.take_over(found.id, name, found.labels)
                self.say(f"{node.platform.name}: reusing kept node {name} (converge inputs unchanged)")
                return True
        if in_use:
            self.say(
                f"{node.platform.name}: kept node {', '.join(in_use)} is in use by another session; "
                "making a new node"
            )
        else:
            self.say(f"{node.platform.name}: no kept node with unchanged converge inputs to reuse")
        return False

    def _converge_cache(
        self, node: Node, engine: Engine, key: convergecache.ConvergeKey | None
    ) -> convergecache.ConvergeKey | None:
        """With ``--infra-cache=converge``: start ``node`` from its converged image if one has
        the key of this converge; else the key to save the converged node under."""
        if self.settings.cache != "converge":
            return None
        why_not = self._why_uncacheable(Target(node.platform, node.short_name))
        if why_not is not None or key is None:
            node.use_converge_cache("off")
            self.say(f"{node.platform.name}: converge cache not used for {node.name}: {why_not}")
            return None
        found, why = convergecache.lookup(engine, key)
        if found is not None:
            node.use_converge_cache("hit", image=found)
            self.say(f"{node.platform.name}: converge cache hit for {node.name} ({why}): converge skipped")
            return None
        node.use_converge_cache("miss")
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
        node.record_time("cache_save", time.monotonic() - started)
        self.say(f"{node.platform.name}: saved the converged {node.name} as image key {key.key}")

    def _image_lock(self, platform_name: str) -> threading.Lock:
        with self._lock:
            return self._image_locks.setdefault(platform_name, threading.Lock())

    def _network_for(self, platform: Platform, engine: Engine) -> str | None:
        """The network the nodes of ``platform`` share (made with ``nodes:`` only); the
        platforms of a span share the first one's (see :meth:`NodeLayout.home`)."""
        if not self.settings.nodes:
            return None
        home = self.layout.home(platform.name)
        name = container_name(self.identity.session_id, home)
        if home in self.networks:
            return name

        def create() -> str:
            net_labels = labels.node_labels(self.identity.session_id, home, name, self.identity.owner)
            return engine.create_network(name, net_labels)

        self.networks[home] = create() if self.shared is None else self.shared.network(home, create)
        return name

    # pytest-xdist: the records through which workers share their nodes
    def _attach(self, target: Target, record: NodeRecord) -> Node:
        home = self.layout.home(target.platform.name)
        network = container_name(self.identity.session_id, home) if self.settings.nodes else None
        node = self._new_node(target, self.connect(), record.image, network=network)
        node.image_cached = record.cached
        for step, took in record.timings.items():
            node.record_time(step, took)
        node.attach(
            record.container_id, converge_log=record.converge_log, converge_cache=record.converge_cache
        )
        self.register(target, node, False)  # not in this worker's summary: its maker's
        return node

    def _record(
        self, target: Target, *, node: Node | None = None, error: InfranodeError | None = None
    ) -> NodeRecord:
        common = NodeRecord(platform=target.platform.name, node=target.node, worker=os.getpid())
        verdict = self.converger.idempotence.get(self.identity.node_name(target))
        if error is not None:
            return NodeRecord(
                platform=common.platform,
                node=common.node,
                worker=common.worker,
                idempotence=verdict,
                error=(error.what, error.where, error.fix, error.detail),
            )
        assert node is not None
        return NodeRecord(
            platform=common.platform,
            node=common.node,
            worker=common.worker,
            container_id=node.container_id,
            image=node.image,
            cached=node.image_cached,
            converge_cache=node.converge_cache,
            timings=dict(node.timings),
            converge_log=node.converge_log,
            idempotence=verdict,
        )


def _shared_nodes(identity: Identity) -> SharedNodes | None:
    """Under pytest-xdist, a worker shares its nodes with the other workers."""
    if identity.role != "worker" or identity.shared is None:
        return None
    return SharedNodes(SharedDir(identity.shared))
