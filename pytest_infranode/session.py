"""InfraSession: the one stateful object of a test session, and the only one the plugin talks to.

It owns what the session decided (identity, provisioners, keep policy; the platforms come
chosen in the settings) and hands the work to small parts: ``connection.py`` (the daemon and the
watchdog), ``bringup.py`` (when nodes are made), ``factory.py`` (how one is made),
``converge.py``, ``keep.py``, ``removal.py``, ``sharing.py`` (pytest-xdist) and ``summary.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import final

import pluggy

from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.bringup import BringUp
from pytest_infranode.connection import Connection
from pytest_infranode.converge import Converger
from pytest_infranode.converge import RunProgress
from pytest_infranode.engine import Engine
from pytest_infranode.errors import NodeError
from pytest_infranode.factory import NodeFactory
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.interrupt import Cancel
from pytest_infranode.keep import KeepPolicy
from pytest_infranode.keep import Kept
from pytest_infranode.keep import keep_workers_nodes
from pytest_infranode.node import Node
from pytest_infranode.node import container_name
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import ConvergesTogether
from pytest_infranode.provisioners.base import InventoryHost
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import action_of
from pytest_infranode.registry import build_provisioners
from pytest_infranode.registry import check_known
from pytest_infranode.removal import Remover
from pytest_infranode.removal import sweep_session
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import Settings
from pytest_infranode.sharing import SharedDir
from pytest_infranode.sharing import SharedNodes
from pytest_infranode.sharing import as_controller
from pytest_infranode.sharing import as_worker
from pytest_infranode.sharing import worker_input
from pytest_infranode.summary import NodeRow
from pytest_infranode.summary import kept_line
from pytest_infranode.summary import node_table
from pytest_infranode.summary import rows_of_nodes
from pytest_infranode.summary import rows_of_records
from pytest_infranode.targets import DEFAULT_NODE
from pytest_infranode.targets import Identity
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import Role
from pytest_infranode.targets import Target

__all__ = ["DEFAULT_NODE", "InfraSession", "Target"]

LATE_WORK = 5.0
"""Seconds an interrupted teardown waits for the bring-up threads told to stop (they end within
about a second: their container removed, their runner tool killed, their build closed)."""


@final
class InfraSession:
    """Owns the nodes of one pytest session.

    Made in ``pytest_configure`` once settings are valid; nodes are made by :meth:`node_for`
    (all that the collected tests need, side by side, once :meth:`plan` named them), removed
    after their platform's last test (:meth:`done_with`), and the rest removed or kept by
    :meth:`teardown`.
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
        self.identity = Identity(labels.new_session_id(), labels.owner())
        self.layout = NodeLayout(settings)
        self.provisioners = build_provisioners(hook.pytest_infranode_add_provisioners())
        check_known(self.provisioners, self.layout.provisioner_configs())
        self.provisioner = self.provisioners[settings.provisioner.name]
        self._provisioner_checked = False
        self.connection = Connection(settings.docker_host, log_dir=log_dir, say=say)
        self.shared: SharedDir | None = None
        self.converger = Converger(settings, hook, log_dir=log_dir, say=say)
        self.keep = KeepPolicy(settings.keep, tell_others=self._tell_controller)
        self.remover = Remover(hook, size=self.parallel)
        self.kept: list[Kept] = []
        self._kept_ids: set[str] = set()
        self._controller_done = False
        self._bringup: BringUp | None = None
        self._factory: NodeFactory | None = None
        self.last_use: dict[str, int] = {}
        """Platform name → position of the last collected test that uses it (see :meth:`done_with`)."""
        self.position = -1
        """Position of the test being run, in the collected order."""
        self._released: set[str] = set()
        """Platforms whose nodes were removed after their last test (see :meth:`done_with`)."""
        self.cancel = Cancel()
        """Set by :meth:`interrupt`; the bring-up's threads check it between their steps."""
        self.activity = "the start of the session"
        """What the main thread is doing (set by the plugin: collection, a test, the teardown),
        for the line saying where the session was interrupted when no node was being made."""
        self._interrupt_handled = False
        self._interrupted_activity = ""

    @property
    def platforms(self) -> tuple[Platform, ...]:
        """The platforms the settings chose (``--infra-platform``), in order."""
        return self.settings.platforms

    @property
    def catalog(self) -> Catalog:
        """Every platform known: the built-ins, what plugins add, ``platform_definitions:``."""
        return self.settings.catalog

    @property
    def engine(self) -> Engine | None:
        """The daemon's engine, once :meth:`connect` ran."""
        return self.connection.engine

    @property
    def session_id(self) -> str:
        return self.identity.session_id

    @property
    def role(self) -> Role:
        """``controller`` and ``worker`` under pytest-xdist: see :meth:`become_controller`."""
        return self.identity.role

    @property
    def echo_line(self) -> Callable[[str], None] | None:
        """Set by the plugin under -s/-v: converge output is shown line by line as it comes."""
        return self.converger.echo_line

    @echo_line.setter
    def echo_line(self, write: Callable[[str], None] | None) -> None:
        self.converger.echo_line = write

    @property
    def run_progress(self) -> RunProgress | None:
        """What shows the live progress of a run over several nodes (see ``Converger``)."""
        return self.converger.run_progress

    @run_progress.setter
    def run_progress(self, progress: RunProgress | None) -> None:
        self.converger.run_progress = progress

    @property
    def parallel(self) -> int:
        """How many nodes are made at once: ``--infra-parallel``, else the number of CPUs."""
        return self.settings.parallel or os.cpu_count() or 1

    # pytest-xdist: one node per platform and name for all workers (see sharing.py)
    def become_controller(self) -> dict[str, str]:
        """Coordinate xdist workers: they share this session id and its nodes; the controller
        owns the watchdog and removes everything at its end.

        :return: what each worker gets in ``workerinput``.
        """
        if self.shared is None:
            self.identity, self.shared = as_controller(self.identity)
        return worker_input(self.identity)

    def join(self, workerinput: dict[str, Any]) -> None:
        """Run as an xdist worker of the controller that sent ``workerinput``."""
        self.identity, self.shared = as_worker(workerinput)

    def _tell_controller(self, platform_name: str) -> None:
        if self.role == "worker" and self.shared is not None:
            SharedNodes(self.shared).mark_failed(platform_name)

    # settings of nodes and provisioners
    def check_provisioner(self) -> None:
        """Validate the provisioner's options and files (raises SettingsError)."""
        for config in self.layout.provisioner_configs():
            self.provisioners[config.name].check(config)
        self._provisioner_checked = True

    def node_name(self, target: Target) -> str:
        """The container name the node of ``target`` has (or will have)."""
        return self.identity.node_name(target)

    def select_nodes(self, names: tuple[str, ...] = (), group: str | None = None) -> list[str]:
        """Short names chosen by an ``infra_node`` marker; without one, the default node."""
        return self.layout.select(names, group)

    def select_hosts(self, specs: list[object], where: str = "") -> list[str]:
        """Short names chosen by a test module's ``testinfra_hosts`` (see
        :meth:`NodeLayout.select_hosts`)."""
        return self.layout.select_hosts(specs, [p.name for p in self.platforms], where)

    # the daemon
    def connect(self) -> Engine:
        """Connect to the daemon once, and sweep what expired sessions left there."""
        return self.connection.connect(self.identity)

    def start_watchdog(self) -> None:
        """Start the watchdog (once); an xdist controller starts it for its workers."""
        self.connection.start_watchdog(self.identity)

    # nodes
    @property
    def bringup(self) -> BringUp:
        """Made on first use, once this process knows its role under pytest-xdist."""
        if self._bringup is None:
            # An xdist worker makes what its tests need, one at a time, under the shared file
            # locks: the workers already run side by side.
            eager = self.role != "worker" and self.parallel > 1
            self._bringup = BringUp(
                self.layout,
                self.factory.make,
                size=self.parallel if eager else 1,
                eager=eager,
                name_of=self.node_name,
                on_failure=lambda target: self.keep.record_failure(target.platform.name),
                group_of=self.converged_together,
                make_group=self.factory.make_group,
                cancel=self.cancel,
            )
        return self._bringup

    @property
    def factory(self) -> NodeFactory:
        if self._factory is None:
            self._factory = NodeFactory(
                self.settings,
                self.hook,
                identity=self.identity,
                layout=self.layout,
                provisioners=self.provisioners,
                converger=self.converger,
                keep=self.keep,
                remover=self.remover,
                connect=self.connect,
                start_watchdog=self.start_watchdog,
                register=lambda target, node, made: self.bringup.register(target, node, made),
                taken=lambda: {n.container_id for n in self.bringup.made},
                say=self.say,
                inventory_of=self.inventory_path,
                cancel=self.cancel,
            )
        return self._factory

    # one run over the nodes of a platform (a provisioner that offers ConvergesTogether)
    def converged_together(self, target: Target) -> tuple[Target, ...]:
        """The targets converged in one run with ``target`` (itself among them), or () when it
        is converged alone: its provisioner does not offer it, it has no other node with the
        same provisioner settings, or a ``conftest.py`` converges nodes itself (the
        ``pytest_infranode_converge`` hook is per node). Under xdist the first worker that
        needs one of them makes them all (see ``SharedNodes.group``)."""
        if not self._converge_hook_is_ours():
            return ()
        config = self.layout.provisioner_of(target.node)
        if not isinstance(self.provisioners[config.name], ConvergesTogether):
            return ()
        return tuple(
            self._target_of(target.platform, n)
            for n in self.layout.converged_together(target.node, target.platform.name)
        )

    def _target_of(self, platform: Platform, short: str) -> Target:
        """The target of node ``short`` made for ``platform``: on its own platform when it is
        one of the :meth:`NodeLayout.span` (a scenario of different images)."""
        own = self.layout.configs[short].platform if short in self.layout.configs else ""
        if platform.name in self.layout.span() and own:
            return Target(self._platform_named(own), short)
        return Target(platform, short)

    def span_targets(self, platform: Platform) -> list[Target]:
        """Every node in ``platform``'s inventory, each with its own platform (see
        :meth:`NodeLayout.members`)."""
        members = self.layout.members(platform.name)
        return [Target(self._platform_named(name), short) for name, short in members]

    def _platform_named(self, name: str) -> Platform:
        return next(p for p in self.platforms if p.name == name)

    def _converge_hook_is_ours(self) -> bool:
        caller = getattr(self.hook, "pytest_infranode_converge", None)
        impls = caller.get_hookimpls() if caller is not None else []
        # wrappers (the live progress) wrap a converge, they do not make one
        return all(impl.plugin is self or impl.wrapper or impl.hookwrapper for impl in impls)

    def inventory_path(self, platform: Platform) -> Path:
        """The inventory of ``platform``'s nodes for this session: written before collection
        (:meth:`write_inventories`), rewritten by each run over them, in a folder of its own (the
        provisioner may put what the tool reads next to it there, made here); it stays for the
        session (``MOLECULE_INVENTORY_FILE`` names it). The platforms of a scenario's span
        (:meth:`NodeLayout.span`) share one, named after the first of them."""
        name = container_name(self.session_id, self.layout.home(platform.name))
        folder = self.log_dir / f"{name}.inventory"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}.inventory.yml"

    def inventory_hosts(self, platform: Platform) -> list[InventoryHost]:
        """The hosts of ``platform``'s inventory: every node, reached by its container name
        (those of the whole span for a platform of it)."""
        hosts = []
        for target in self.span_targets(platform):
            config = self.layout.configs[target.node]
            hosts.append(
                InventoryHost(
                    name=target.node or target.platform.name,
                    container=self.node_name(target),
                    platform=target.platform,
                    groups=config.groups,
                )
            )
        return hosts

    def write_inventories(self) -> list[Path]:
        """Write each platform's session inventory, when the top-level provisioner can write
        one (before any node exists: the hosts are the containers' names, which the tools
        accept). Returns the files, in platform order."""
        provisioner = self.provisioner
        if not isinstance(provisioner, ConvergesTogether):
            return []
        written: list[Path] = []
        for platform in self.platforms:
            path = self.inventory_path(platform)
            if path not in written:  # the platforms of a span share one
                provisioner.write_inventory(path, self.inventory_hosts(platform), self.settings.provisioner)
                written.append(path)
        return written

    def inventory_env(self) -> dict[str, str]:
        """The environment the specs' own runs of the provisioner's tool need to use the
        session inventory (empty when the provisioner writes none)."""
        provisioner = self.provisioner
        if not isinstance(provisioner, ConvergesTogether):
            return {}
        return dict(provisioner.inventory_env(self.settings.provisioner))

    def inventory_name(self, node: Node) -> str:
        """The host name of ``node`` in the session inventory."""
        return node.short_name or node.platform.name

    def plan(self, targets: list[Target]) -> None:
        """Tell the session which nodes the collected tests use; the first :meth:`node_for` then
        starts making all of them (bounded by :attr:`parallel`), in ``depends_on`` order."""
        self.bringup.planned = self.layout.plan(targets)

    def node_for(self, platform: Platform, short_name: str = "") -> Node:
        """The converged node ``short_name`` of ``platform``, made on first use after the
        nodes it depends on.

        :raises InfranodeError: the same error again for every test of a node that could not
            be made or converged.
        """
        target = Target(platform, short_name)
        if platform.name in self._released:
            raise NodeError(
                f"node {self.node_name(target)} was removed after the last test that uses platform "
                f"{platform.name}, and a test of it ran later",
                where=f"platform {platform.name}",
                fix="a plugin changed the order of the tests after collection; run without it, "
                "or keep the nodes to the end with --infra-keep=always",
            )
        self.connect()
        return self.bringup.node_for(target)

    def nodes_of(self, platform: Platform) -> dict[str, Node]:
        """Every node of ``platform`` by short name (converged in order); see ``infra_nodes``."""
        return {
            (short or DEFAULT_NODE): self.node_for(platform, short)
            for short in self.layout.names_on(platform.name)
        }

    def verify(self, platform: Platform) -> tuple[str, ConvergeResult, Path]:
        """Run the provisioner's ``verify`` action (Molecule's ``verify.yml``) over every node of
        ``platform`` (of its whole span, see :meth:`NodeLayout.span`), made and converged first:
        what it ran, its result and its log."""
        nodes = [self.node_for(t.platform, t.node) for t in self.span_targets(platform)]
        config = self.settings.provisioner
        what = action_of(self.provisioner, "verify", config) or "verify"
        inventory = self.inventory_path(platform) if isinstance(self.provisioner, ConvergesTogether) else None
        result, log = self.converger.verify(
            nodes,
            self.provisioner,
            config,
            inventory=inventory,
            log_name=container_name(self.session_id, self.layout.home(platform.name)),
        )
        return what, result, log

    def find_node(self, target: Target) -> Node | None:
        """The node of ``target`` if it was made (live, kept or removed)."""
        name = self.node_name(target)
        made = self._bringup.made if self._bringup else []
        return next((n for n in reversed(made) if n.name.startswith(name)), None)

    def wait_for_all(self) -> None:
        """Let nodes still being made finish (before teardown removes them)."""
        if self._bringup is not None:
            self._bringup.wait_for_all()

    @hookimpl(trylast=True)
    def pytest_infranode_converge(
        self, node: Node, provisioner: Provisioner, config: ProvisionerConfig, output: OutputSink
    ) -> ConvergeResult:
        if not self._provisioner_checked:
            provisioner.check(config)
        return provisioner.converge(node, config, output)

    # keep policy and removal
    def record_failure(self, platform: Platform) -> None:
        """A test of ``platform`` failed (``--infra-keep=failure`` keeps its nodes, and those of
        its span: one network and inventory, kept whole for a look)."""
        for name in self.layout.span_of(platform.name):
            self.keep.record_failure(name, by_test=True)

    def done_with(self, platform: Platform) -> None:
        """pytest has finished ``platform``'s session fixtures (it does so when the next test
        needs another platform). If no later test uses the platform, its nodes are removed now,
        side by side with the next tests, instead of at the session's end; nodes that
        ``--infra-keep`` keeps, and nodes still being made, are left to :meth:`teardown`. The
        platforms of a span (:meth:`NodeLayout.span`) are one: their nodes go when none of them
        has a later test (a run over the span's inventory needs them all).
        """
        names = self.layout.span_of(platform.name)
        later = [self.last_use.get(n, self.position if n == platform.name else -1) for n in names]
        if self.role != "single" or max(later) >= self.position:
            return
        if self._bringup is None:
            return
        for name in names:
            doomed = self._bringup.release(name, self.keep.should_keep)
            if doomed:
                self._released.add(name)
                self.remover.start(doomed)

    def interrupt(self, reason: str) -> None:
        """Ctrl-C or SIGTERM (``reason``): the work under way is told to stop at once (its
        runner tools killed, its image builds closed); :meth:`teardown` then removes the nodes
        without waiting for it."""
        if not self.cancel.is_set:
            self._interrupted_activity = self.activity
        self.cancel.set(reason)

    def teardown(self) -> None:
        """Remove every node (except kept ones) and anything else labelled with this session.

        Keeps going through failures and records them for the summary. An xdist worker leaves
        the nodes to its controller, which removes (or keeps) them all at its end. After an
        interrupt, see :meth:`_interrupted_teardown`.
        """
        if self.cancel.is_set:
            self._interrupted_teardown()
            return
        if self.role == "worker":
            return
        self.wait_for_all()
        if self.role == "controller" and not self._controller_done:
            self._keep_workers_nodes()
        live = [n for n in (self._bringup.nodes.values() if self._bringup else ()) if n.state != "removed"]
        kept, ids, doomed = self.keep.at_end(live, self.remover.report)
        self.kept += kept
        removed = {n.name for n in doomed if n.container_id}
        self.remover.remove_all(doomed)
        if self.engine is not None:
            removed |= set(self._sweep(self._kept_ids | ids))
        if self._bringup is not None:
            self._bringup.nodes = {k: n for k, n in self._bringup.nodes.items() if n.state != "removed"}
        self.connection.release_watchdog()
        if self.cancel.is_set and not self._interrupt_handled:  # the signal came during this teardown
            self._interrupt_handled = True
            self._say_interrupted(len(removed))

    def _say_interrupted(self, removed: int) -> None:
        """The one line saying where the session was interrupted, and what was removed."""
        where = ", ".join(self.cancel.interrupted_during) or self._interrupted_activity or self.activity
        self.say(f"interrupted ({self.cancel.reason}) during {where}; removed {removed} node(s)")

    def _interrupted_teardown(self) -> None:
        """The teardown of an interrupted session: nodes still being made are removed at once
        (removing a container ends the commands running in it); finished ones follow the keep
        policy. The threads told to stop are given :data:`LATE_WORK` seconds, then what they
        made meanwhile is swept too. If one is still running then, the watchdog is not
        released: it removes what is left once this process ends. One line says where the
        session was interrupted and how many nodes were removed."""
        if self._interrupt_handled:
            return
        self._interrupt_handled = True
        bringup = self._bringup
        if bringup is not None:
            bringup.abandon(timeout=0)  # jobs not started never start
        if self.role == "worker":  # its controller removes the nodes
            return
        if self.role == "controller" and not self._controller_done:
            self._keep_workers_nodes()
        live = [(k, n) for k, n in (bringup.nodes.items() if bringup else ()) if n.state != "removed"]
        busy = [n for k, n in live if bringup is not None and bringup.busy(k)]
        kept, ids, doomed = self.keep.at_end([n for _k, n in live if n not in busy], self.remover.report)
        self.kept += kept
        doomed += busy
        removed = {n.name for n in doomed if n.container_id}
        self.remover.remove_all(doomed)
        finished = True
        if self.engine is not None:
            removed |= set(self._sweep(self._kept_ids | ids))
            finished = bringup.abandon(timeout=LATE_WORK) if bringup is not None else True
            removed |= set(self._sweep(self._kept_ids | ids))  # made by a thread meanwhile
        if bringup is not None:
            bringup.nodes = {k: n for k, n in bringup.nodes.items() if n.state != "removed"}
        self._say_interrupted(len(removed))
        if finished:
            self.connection.release_watchdog()
        else:
            self.say(
                "a bring-up step did not stop in time; the watchdog removes what it leaves "
                f"(session {self.session_id}) once this process ends"
            )

    def _keep_workers_nodes(self) -> None:
        """The controller of xdist workers keeps what the policy names of the nodes they made."""
        if self.engine is None or self.shared is None:
            return
        self._controller_done = True
        failed = SharedNodes(self.shared).failed_platforms()
        kept, ids = keep_workers_nodes(self.engine, self.session_id, self.keep, failed, self.remover.report)
        self.kept += kept
        self._kept_ids |= ids

    def _sweep(self, keep_ids: set[str]) -> list[str]:
        assert self.engine is not None
        networks = self._factory.networks if self._factory else {}
        return sweep_session(self.engine, self.session_id, keep_ids, networks, self.remover.report)

    # the terminal summary (see summary.py)
    def _rows(self) -> list[NodeRow]:
        if self.role == "controller" and self.shared is not None:
            kept = {k.name.removesuffix(reaper.KEPT_SUFFIX) for k in self.kept}
            known = {p.name for p in self.catalog}
            return rows_of_records(SharedNodes(self.shared).records(), self.session_id, known, kept)
        if self._bringup is None:
            return []
        return rows_of_nodes(self._bringup.made, self._bringup.failures, self.converger.idempotence)

    def node_table(self) -> list[str]:
        """One line per node made in this session, for the terminal summary."""
        return node_table(
            self._rows(),
            idempotence=self.settings.idempotence,
            converge_cache=self.settings.cache == "converge",
        )

    def summary_lines(self) -> list[str]:
        lines = [kept_line(k.name, k.platform, k.session or self.session_id) for k in self.kept]
        lines.extend(f"teardown problem: {e}" for e in self.remover.problems)
        return lines
