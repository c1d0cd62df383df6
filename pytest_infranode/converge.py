"""Converging a booted node: the provisioner through the converge hook, its log, its timeout, the
idempotence check, the provisioner's own side effect and ``side_effect:``. A failure leaves the
node ``failed`` and raises :class:`~pytest_infranode.errors.ConvergeError`; what happens to the
node then is the keep policy's (``keep.py``), decided by the caller."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import final

import pluggy

from pytest_infranode import interrupt
from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.node import Node
from pytest_infranode.progress import LineEcho
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import ConvergesTogether
from pytest_infranode.provisioners.base import LeavesBare
from pytest_infranode.provisioners.base import MaskingSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import RunsActions
from pytest_infranode.provisioners.base import action_of
from pytest_infranode.provisioners.base import file_tail
from pytest_infranode.provisioners.base import mask
from pytest_infranode.provisioners.base import secrets_of
from pytest_infranode.settings import CONFIG_NAMES
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import Settings

LOG_TAIL_LINES = 25


def idempotence_verdict(result: ConvergeResult | None) -> str:
    """What the second converge says, for the summary table. Pure."""
    if result is None or not result.ok:
        return "second converge failed"
    if result.changed is None:
        return "not checked"
    return "not idempotent" if result.changed else "ok"


def not_idempotent(what: str, result: ConvergeResult, secrets: list[str], where: str) -> ConvergeError:
    """The error of a second converge that changed something: ``what`` (who, and with which
    provisioner) "changed N thing(s)", with the changes, secrets masked, as its detail."""
    changes = [mask(c, secrets) for c in result.changes] or ["(the provisioner did not say what)"]
    if result.more_changes:
        changes.append(f"… and {result.more_changes} more change(s): see the converge log")
    count = len(result.changes) + result.more_changes
    err = ConvergeError(
        f"{what} changed " + (f"{count} thing(s)" if result.changes else "something"),
        where=where,
        fix="make the converge idempotent (a task that always reports a change, a file "
        "rewritten every run …), or drop --infra-idempotence",
        exit_status=result.exit_status,
    )
    err.detail = "--- what the second converge changed ---\n" + "\n".join(changes)
    return err


def _label(node: Node) -> str:
    return node.short_name or node.platform.name


def provisioner_name(provisioner: object) -> str:
    return str(getattr(provisioner, "name", "the"))


def _log_tail(log_path: Path) -> str:
    return file_tail(log_path, LOG_TAIL_LINES)


@final
class Converger:
    """Runs the converge of each node of a session."""

    def __init__(
        self,
        settings: Settings,
        hook: pluggy.HookRelay,
        *,
        log_dir: Path,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.hook = hook
        self.log_dir = log_dir
        self.say = say
        self.echo_line: Callable[[str], None] | None = None
        """Set by the plugin under -s/-v: converge output is shown line by line as it comes."""
        self.idempotence: dict[str, str] = {}
        """Node name → the idempotence check's verdict (with ``--infra-idempotence``)."""

    def skipped(self, node: Node) -> None:
        """The converge cache had the converged node: the converge is in its image, and the
        ``after_converge`` hooks still run."""
        node.converged()
        self.hook.pytest_infranode_after_converge(
            node=node, result=ConvergeResult(0, "(converge cache hit: not run)", changed=False)
        )

    def _say_units(self, node: Node) -> None:
        """After a converge that succeeded: a unit the converge left failed (a role installed a
        service that cannot start in a container), or an enabled service a condition skipped, is
        said with its cause and fix; the specs still run, and decide. Said, not warned: under
        ``filterwarnings = error`` a warning would turn a converge that succeeded into an error."""
        try:
            report = node.unit_report()
        except InfranodeError:
            return  # the node's next command says what happened to it
        if report:
            self.say(f"{node.platform.name}: after its converge, {report}")

    def converge(self, node: Node, provisioner: Provisioner, config: ProvisionerConfig) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{node.name}.converge.log"
        started = time.monotonic()
        platform = node.platform.name
        if isinstance(provisioner, LeavesBare):
            # the friction of a spec folder run on its own: say where no configuration was found
            looked = (
                f" (no {' or '.join(CONFIG_NAMES)} in the rootdir {config.base_dir}; "
                "--infra-config names one elsewhere)"
                if self.settings.config_file is None
                else ""
            )
            self.say(f"{platform}: {node.name} left bare: no provisioner configured{looked}")
        else:
            self.say(f"{platform}: converging {node.name} with {provisioner.name} (log: {log_path})")
        secrets = secrets_of(config, os.environ)
        with self._log_sink(_label(node), log_path, secrets, append=False) as output:
            # A converge past its timeout is ended by stopping the node: that works for every
            # provisioner, whether it runs in the node or on the runner.
            timer = threading.Timer(self.settings.converge_timeout, node.stop_converge)
            timer.daemon = True
            timer.start()
            node.begin_converge()
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
        if result is not None and result.ok and not result.ran and not node.timed_out:
            node.converged(bare=True)
            self.hook.pytest_infranode_after_converge(node=node, result=result)
            return
        node.converge_log = str(log_path)
        node.record_time("converge", time.monotonic() - started)
        if result is None or not result.ok or node.timed_out:
            node.failed(str(log_path))
            status = None if result is None else result.exit_status
            how = (
                f"ran longer than the converge timeout ({self.settings.converge_timeout:g} s) and was stopped"
                if node.timed_out
                else f"exited with status {status}"
                + (f": {result.reason}" if result is not None and result.reason else "")
            )
            tail = mask(result.tail(), secrets) if result else ""
            if not tail:
                tail = _log_tail(log_path)
            raise ConvergeError(
                f"converge of {node.name} failed: the {provisioner.name} provisioner {how}",
                where=f"{node.where}; full log: {log_path}",
                fix=f"fix the provisioner's input ({config.source.where('provisioner')}); "
                "keep the node for a look with --infra-keep=failure",
                exit_status=status,
                log_tail=tail,
            )
        if self.settings.idempotence:
            self._check_idempotence(node, provisioner, config, log_path, secrets)
        node.converged(str(log_path))
        self._say_units(node)
        self.hook.pytest_infranode_after_converge(node=node, result=result)

    def converge_together(
        self,
        nodes: Sequence[Node],
        provisioner: Provisioner,
        config: ProvisionerConfig,
        *,
        levels: Sequence[Sequence[str]],
        inventory: Path,
        log_name: str,
    ) -> None:
        """Converge booted ``nodes`` of one platform in one run of ``provisioner`` over an
        inventory of all of them (a run per ``depends_on`` level, limited to it, when there are
        several), then once more over all of them with ``--infra-idempotence``.

        The run's result is every node's: a failure fails them all (one error, one log).
        """
        assert isinstance(provisioner, ConvergesTogether)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{log_name}.converge.log"
        platform = nodes[0].platform.name
        names = ", ".join(n.short_name for n in nodes)
        self.say(
            f"{platform}: converging nodes {names} in one {provisioner.name} run over the "
            f"inventory {inventory} (log: {log_path})"
        )
        secrets = secrets_of(config, os.environ)
        started = time.monotonic()
        result: ConvergeResult | None = None
        runs = [list(level) for level in levels] if len(levels) > 1 else [[]]
        with self._log_sink(platform, log_path, secrets, append=False) as output:

            def stop_all() -> None:
                for each in nodes:
                    each.stop_converge()

            timer = threading.Timer(self.settings.converge_timeout, stop_all)
            timer.daemon = True
            timer.start()
            for node in nodes:
                node.begin_converge()
            try:
                for limit in runs:
                    if limit:
                        output(f"--- infranode: depends_on level: {', '.join(limit)}\n".encode())
                    result = provisioner.converge_together(
                        nodes, config, output, inventory=inventory, limit=limit
                    )
                    if not result.ok:
                        break
            except InfranodeError:
                if not any(n.timed_out for n in nodes):
                    raise
                result = None
            finally:
                timer.cancel()
        took = time.monotonic() - started
        for node in nodes:
            node.converge_log = str(log_path)
            node.record_time("converge", took)
        timed_out = any(n.timed_out for n in nodes)
        if result is None or not result.ok or timed_out:
            for node in nodes:
                node.failed(str(log_path))
            status = None if result is None else result.exit_status
            how = (
                f"ran longer than the converge timeout ({self.settings.converge_timeout:g} s) and was stopped"
                if timed_out
                else f"exited with status {status}"
            )
            tail = mask(result.tail(), secrets) if result else ""
            if not tail:
                tail = _log_tail(log_path)
            raise ConvergeError(
                f"converge of nodes {names} (one run over all of them) failed: the "
                f"{provisioner.name} provisioner {how}",
                where=f"platform {platform}; inventory {inventory}; full log: {log_path}",
                fix=f"fix the provisioner's input ({config.source.where('provisioner')}); "
                "keep the nodes for a look with --infra-keep=failure",
                exit_status=status,
                log_tail=tail,
            )
        if self.settings.idempotence:
            self._check_idempotence_together(nodes, provisioner, config, inventory, log_path, secrets)
        for node in nodes:
            node.converged(str(log_path))
            self._say_units(node)
            self.hook.pytest_infranode_after_converge(node=node, result=result)

    def _check_idempotence_together(
        self,
        nodes: Sequence[Node],
        provisioner: ConvergesTogether,
        config: ProvisionerConfig,
        inventory: Path,
        log_path: Path,
        secrets: list[str],
    ) -> None:
        """The second run over every node; they all fail if it changed anything, showing what."""
        platform = nodes[0].platform.name
        names = ", ".join(n.short_name for n in nodes)
        self.say(f"{platform}: converging nodes {names} again to check idempotence")
        interrupt.now(f"the idempotence run of nodes {names} of {platform}")
        started = time.monotonic()
        with self._log_sink(platform, log_path, secrets, append=True) as output:
            output(b"\n--- infranode: second converge (idempotence check) ---\n")
            for node in nodes:
                node.begin_converge()
            result = provisioner.converge_together(nodes, config, output, inventory=inventory)
        took = time.monotonic() - started
        verdict = idempotence_verdict(result)
        for node in nodes:
            node.record_time("idempotence", took)
            self.idempotence[node.name] = verdict
        where = f"platform {platform}; inventory {inventory}; full log: {log_path}"
        if not result.ok:
            for node in nodes:
                node.failed()
            raise ConvergeError(
                f"the second converge of nodes {names} (idempotence check) failed: the "
                f"{provisioner_name(provisioner)} provisioner exited with status {result.exit_status}",
                where=where,
                fix="a converge must succeed when run again on converged nodes; keep the nodes for a "
                "look with --infra-keep=failure",
                exit_status=result.exit_status,
                log_tail=mask(result.tail(), secrets),
            )
        if result.changed:
            for node in nodes:
                node.failed()
            raise not_idempotent(
                f"nodes {names} are not idempotent: the second run with {provisioner_name(provisioner)}",
                result,
                secrets,
                where,
            )

    def provisioner_side_effect(
        self,
        nodes: Sequence[Node],
        provisioner: Provisioner,
        config: ProvisionerConfig,
        *,
        inventory: Path | None,
    ) -> None:
        """The provisioner's own side effect (Molecule's ``side_effect.yml``), when ``config``
        names one, over the converged ``nodes`` (the nodes of one run, or one node), appended to
        their converge log; a failure fails them all."""
        what = action_of(provisioner, "side_effect", config)
        if what is None:
            return
        assert isinstance(provisioner, RunsActions)
        log_path = self._log_of(nodes[0])
        platform = nodes[0].platform.name
        names = ", ".join(n.name for n in nodes)
        self.say(f"{platform}: running the side effect {what} on {names}")
        secrets = secrets_of(config, os.environ)
        started = time.monotonic()
        with self._log_sink(
            platform if len(nodes) > 1 else _label(nodes[0]), log_path, secrets, append=True
        ) as output:
            output(f"\n--- infranode: side effect ({what}) ---\n".encode())
            result = provisioner.run_action("side_effect", nodes, config, output, inventory=inventory)
        took = time.monotonic() - started
        for node in nodes:
            node.record_time("side_effect", took)
        if not result.ok:
            for node in nodes:
                node.failed(str(log_path))
            raise ConvergeError(
                f"the side effect of {names} failed: {what} ({provisioner.name} provisioner) exited "
                f"with status {result.exit_status}" + (f": {result.reason}" if result.reason else ""),
                where=f"platform {platform}; full log: {log_path}",
                fix=f"fix {what} (`side_effect` in {config.source.where('provisioner')}); keep the "
                "node for a look with --infra-keep=failure",
                exit_status=result.exit_status,
                log_tail=mask(result.tail(), secrets) or mask(_log_tail(log_path), secrets),
            )

    def verify(
        self,
        nodes: Sequence[Node],
        provisioner: Provisioner,
        config: ProvisionerConfig,
        *,
        inventory: Path | None,
        log_name: str,
    ) -> tuple[ConvergeResult, Path]:
        """The provisioner's ``verify`` action over the converged ``nodes``: a test's body, so it
        never fails the nodes; its result (tail masked) and its own log are the caller's."""
        what = action_of(provisioner, "verify", config)
        assert what is not None
        assert isinstance(provisioner, RunsActions)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{log_name}.verify.log"
        platform = nodes[0].platform.name
        names = ", ".join(n.name for n in nodes)
        self.say(f"{platform}: running {what} on {names} (log: {log_path})")
        secrets = secrets_of(config, os.environ)
        with self._log_sink(platform, log_path, secrets, append=False) as output:
            result = provisioner.run_action("verify", nodes, config, output, inventory=inventory)
        tail = mask(result.tail(), secrets) or mask(_log_tail(log_path), secrets)
        return ConvergeResult(result.exit_status, tail, reason=result.reason), log_path

    def _log_of(self, node: Node) -> Path:
        """The node's converge log, to append to (a converge cache hit wrote none yet)."""
        if node.converge_log:
            return Path(node.converge_log)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{node.name}.converge.log"

    def side_effect(self, node: Node, commands: tuple[str, ...], config: ProvisionerConfig) -> None:
        """Molecule's ``side_effect``: commands run in the node after its converge."""
        log_path = self._log_of(node)
        started = time.monotonic()
        secrets = secrets_of(config, os.environ)
        with self._log_sink(_label(node), log_path, secrets, append=True) as output:
            for command in commands:
                output(f"--- side_effect: {command}\n".encode())
                result = node.run_argv(["/bin/sh", "-c", command], on_output=output)
                if result.exit_status != 0:
                    output.flush()
                    node.failed()
                    raise ConvergeError(
                        f"side_effect of {node.name} failed: `{command}` exited with status "
                        f"{result.exit_status}",
                        where=f"{node.where}; full log: {log_path}",
                        fix="fix the command in `side_effect:` of node "
                        f"{node.short_name} in {self.settings.config_file or 'the configuration'}",
                        exit_status=result.exit_status,
                        log_tail=mask(_log_tail(log_path), secrets),
                    )
        node.record_time("side_effect", time.monotonic() - started)

    @contextlib.contextmanager
    def _log_sink(
        self, label: str, log_path: Path, secrets: list[str], *, append: bool
    ) -> Iterator[MaskingSink]:
        """Where converge, idempotence and side-effect output goes: secrets masked, written to the
        node's log (readable by us only: it may describe the machine), shown live under -s/-v."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        echo = LineEcho(self.echo_line, f"  {label} | ") if self.echo_line is not None else None
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
        interrupt.now(f"the idempotence run of {node.name}")
        started = time.monotonic()
        with self._log_sink(_label(node), log_path, secrets, append=True) as output:
            output(b"\n--- infranode: second converge (idempotence check) ---\n")
            node.begin_converge()
            result: ConvergeResult | None = self.hook.pytest_infranode_converge(
                node=node, provisioner=provisioner, config=config, output=output
            )
        node.record_time("idempotence", time.monotonic() - started)
        where = f"{node.where}; full log: {log_path}"
        self.idempotence[node.name] = idempotence_verdict(result)  # for the summary table
        if result is None or not result.ok:
            node.failed()
            raise ConvergeError(
                f"the second converge of {node.name} (idempotence check) failed: the "
                f"{provisioner.name} provisioner exited with status {result.exit_status if result else None}",
                where=where,
                fix="a converge must succeed when run again on a converged node; keep the node for a "
                "look with --infra-keep=failure",
                exit_status=result.exit_status if result else None,
                log_tail=mask(result.tail(), secrets) if result else "",
            )
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
            node.failed()
            raise not_idempotent(
                f"{node.name} is not idempotent: the second converge with {provisioner.name}",
                result,
                secrets,
                where,
            )
