"""InfraSession: the one stateful object of a test session (nodes, keep policy, teardown)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import final

import pluggy

from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.engine import Engine
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import MaskingSink
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import mask
from pytest_infranode.provisioners.base import secret_values
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import Settings


def build_catalog(contributions: list[list[Platform] | None]) -> Catalog:
    catalog = Catalog()
    for platforms in contributions:
        for platform in platforms or []:
            catalog.add(platform, source="a pytest_infranode_add_platforms hook")
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
        self.session_id = labels.new_session_id()
        self.catalog = build_catalog(hook.pytest_infranode_add_platforms())
        self.platforms: list[Platform] = self.catalog.select(
            settings.platforms, where=settings.platforms_source
        )
        provisioners = build_provisioners(hook.pytest_infranode_add_provisioners())
        name = settings.provisioner.name
        if name not in provisioners:
            raise SettingsError(
                f"unknown provisioner {name!r}",
                where=settings.provisioner.source.where("provisioner"),
                fix=f"use one of: {', '.join(sorted(provisioners))}, or install the plugin that adds it",
            )
        self.provisioner = provisioners[name]
        self._provisioner_checked = False
        self.engine: Engine | None = None
        self.watchdog: reaper.Watchdog | None = None
        self.nodes: dict[str, Node] = {}
        self.failures: dict[str, InfranodeError] = {}
        self.failed_platforms: set[str] = set()
        self.kept: list[Node] = []
        self.teardown_errors: list[str] = []
        self._lock = threading.Lock()

    def check_provisioner(self) -> None:
        """Validate the provisioner's options and files (raises SettingsError)."""
        self.provisioner.check(self.settings.provisioner)
        self._provisioner_checked = True

    def connect(self) -> Engine:
        """Connect to the daemon once, and sweep what expired sessions left there."""
        if self.engine is None:
            self.engine = Engine.connect(self.settings.docker_host)
            removed = reaper.sweep_expired(self.engine, exclude=self.session_id)
            if removed:
                self.say(f"removed {len(removed)} node(s) left by expired sessions: {', '.join(removed)}")
        return self.engine

    def _start_watchdog(self) -> None:
        if self.watchdog is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.watchdog = reaper.Watchdog(
                self.session_id,
                self.settings.docker_host,
                str(self.log_dir / f"watchdog-{self.session_id}.log"),
            )

    # nodes
    def node_for(self, platform: Platform) -> Node:
        """The converged node of ``platform``, made on first use.

        :raises InfranodeError: the same error again for every test of a platform whose node
            could not be made or converged.
        """
        with self._lock:
            if platform.name in self.failures:
                raise self.failures[platform.name]
            node = self.nodes.get(platform.name)
            if node is not None:
                return node
            try:
                return self._make_node(platform)
            except InfranodeError as err:
                self.failures[platform.name] = err
                self.failed_platforms.add(platform.name)
                raise

    def _make_node(self, platform: Platform) -> Node:
        engine = self.connect()
        started = time.monotonic()
        image, cached = engine.prepared_image(platform, self.say)
        node = Node(engine, platform, session_id=self.session_id, image=image)
        self._start_watchdog()
        node.image_cached = cached
        node.timings["image"] = time.monotonic() - started
        self.nodes[platform.name] = node
        options = create_kwargs(node.spec, engine.info)
        custom = self.hook.pytest_infranode_container_options(node=node, options=dict(options))
        node.create(custom if custom is not None else options)
        self.say(f"{platform.name}: node {node.name} created, booting")
        node.start(boot_timeout=self.settings.boot_timeout)
        self._converge(node)
        node.timings["ready"] = time.monotonic() - started
        return node

    def _converge(self, node: Node) -> None:
        config = self.settings.provisioner
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{node.name}.converge.log"
        started = time.monotonic()
        self.say(f"{node.platform.name}: converging with {self.provisioner.name} (log: {log_path})")
        secrets = secret_values(config.options.get("secret_env"), os.environ)
        # The log may hold what a provisioner printed about the machine: readable by us only.
        with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as log_file:

            def write(chunk: bytes) -> None:
                log_file.write(chunk)
                log_file.flush()

            output = MaskingSink(write, secrets)

            # A converge past its timeout is ended by stopping the node: that works for every
            # provisioner, whether it runs in the node or on the runner.
            timer = threading.Timer(self.settings.converge_timeout, self._converge_timed_out, (node,))
            timer.daemon = True
            timer.start()
            try:
                result: ConvergeResult | None = self.hook.pytest_infranode_converge(
                    node=node, provisioner=self.provisioner, config=config, output=output
                )
            except InfranodeError:
                if not node.timed_out:
                    raise
                result = None
            finally:
                timer.cancel()
                output.flush()
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
                f"converge of {node.name} failed: the {self.provisioner.name} provisioner {how}",
                where=f"{node.where}; full log: {log_path}",
                fix=f"fix the provisioner's input ({config.source.where('provisioner')}); "
                "keep the node for a look with --infra-keep=failure",
                exit_status=status,
                log_tail=tail,
            )
            if self.settings.keep == "never":
                self._remove(node)
            raise err
        node.state = "converged"
        self.hook.pytest_infranode_after_converge(node=node, result=result)

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

    def should_keep(self, node: Node) -> bool:
        keep = self.settings.keep
        return keep == "always" or (keep == "failure" and node.platform.name in self.failed_platforms)

    def _remove(self, node: Node) -> None:
        try:
            self.hook.pytest_infranode_before_remove(node=node)
        except Exception as exc:  # a plugin's failure must not leave the node behind
            self.teardown_errors.append(f"{node.name}: pytest_infranode_before_remove failed: {exc}")
        node.remove()

    def teardown(self) -> None:
        """Remove every node (except kept ones) and anything else labelled with this session.

        Keeps going through failures and records them in :attr:`teardown_errors`.
        """
        keep_ids: set[str] = set()
        for node in list(self.nodes.values()):
            if node.state == "removed":
                continue
            if self.should_keep(node) and node.container_id:
                keep_ids.add(node.container_id)
                self._keep(node)
                continue
            try:
                self._remove(node)
            except Exception as exc:  # teardown keeps removing, then reports
                self.teardown_errors.append(f"{node.name}: {exc}")
        if self.engine is not None:
            try:
                reaper.sweep(self.engine, session_id=self.session_id, keep=frozenset(keep_ids))
            except Exception as exc:
                self.teardown_errors.append(f"sweep of session {self.session_id}: {exc}")
        self.nodes = {k: n for k, n in self.nodes.items() if n.state != "removed"}
        if self.watchdog is not None:
            self.watchdog.release()
            self.watchdog = None

    def _keep(self, node: Node) -> None:
        """Leave the node running for a look; renamed so that the automatic sweep spares it."""
        kept_name = node.name + reaper.KEPT_SUFFIX
        try:
            if self.engine is not None:
                self.engine.rename_container(node.container_id, kept_name)
                node.name = kept_name
        except InfranodeError as exc:
            self.teardown_errors.append(f"{node.name}: could not mark as kept: {exc.what}")
        self.kept.append(node)

    def summary_lines(self) -> list[str]:
        lines = []
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
