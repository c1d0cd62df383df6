"""Converging a booted node: the provisioner through the converge hook, its log, its timeout, the
idempotence check and ``side_effect:``. A failure leaves the node ``failed`` and raises
:class:`~pytest_infranode.errors.ConvergeError`; what happens to the node then is the keep
policy's (``keep.py``), decided by the caller."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import final

import pluggy

from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.node import Node
from pytest_infranode.progress import LineEcho
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import MaskingSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import mask
from pytest_infranode.provisioners.base import secrets_of
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


def _log_tail(log_path: Path) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])


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

    def converge(self, node: Node, provisioner: Provisioner, config: ProvisionerConfig) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{node.name}.converge.log"
        started = time.monotonic()
        self.say(f"{node.platform.name}: converging {node.name} with {provisioner.name} (log: {log_path})")
        secrets = secrets_of(config, os.environ)
        with self._log_sink(node, log_path, secrets, append=False) as output:
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
            if not tail and log_path.exists():
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
        self.hook.pytest_infranode_after_converge(node=node, result=result)

    def side_effect(self, node: Node, commands: tuple[str, ...], config: ProvisionerConfig) -> None:
        """Molecule's ``side_effect``: commands run in the node after its converge."""
        log_path = Path(node.converge_log)
        started = time.monotonic()
        secrets = secrets_of(config, os.environ)
        with self._log_sink(node, log_path, secrets, append=True) as output:
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
        self, node: Node, log_path: Path, secrets: list[str], *, append: bool
    ) -> Iterator[MaskingSink]:
        """Where converge, idempotence and side-effect output goes: secrets masked, written to the
        node's log (readable by us only: it may describe the machine), shown live under -s/-v."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        echo = (
            LineEcho(self.echo_line, f"  {node.short_name or node.platform.name} | ")
            if self.echo_line is not None
            else None
        )
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
        started = time.monotonic()
        with self._log_sink(node, log_path, secrets, append=True) as output:
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
            raise err
