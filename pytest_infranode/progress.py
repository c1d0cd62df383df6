"""Showing streamed converge output line by line, with a prefix naming the node, and live progress.

Which lines name the step a tool is at is the provisioner's to say (``step_of`` in its contract,
``provisioners/base.py``); this module shows them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import final

from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners.base import LINE_MAX
from pytest_infranode.provisioners.base import StepReader
from pytest_infranode.provisioners.base import command_step
from pytest_infranode.provisioners.base import step_reader

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.provisioners.base import ConvergeResult
    from pytest_infranode.provisioners.base import Provisioner


@final
class LineEcho:
    """An output sink that hands complete lines, prefixed, to ``write``; :meth:`flush` the rest.

    Chunks from a tool end anywhere (mid-line, mid-character): lines are cut at ``\\n`` only and
    decoded whole, so a multi-byte character split across two chunks is shown intact. A line
    longer than :data:`~pytest_infranode.provisioners.base.LINE_MAX` is shown in pieces of that
    size (output without newlines is not held back without bound).
    """

    def __init__(self, write: Callable[[str], None], prefix: str = "") -> None:
        self._write = write
        self._prefix = prefix
        self._pending = b""

    def __call__(self, chunk: bytes) -> None:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        while len(self._pending) > LINE_MAX:
            lines.append(self._pending[:LINE_MAX])
            self._pending = self._pending[LINE_MAX:]
        for line in lines:
            self._write(self._prefix + line.decode("utf-8", "replace").rstrip("\r"))

    def flush(self) -> None:
        if self._pending:
            self._write(self._prefix + self._pending.decode("utf-8", "replace").rstrip("\r"))
            self._pending = b""


#: How much of the converge log the progress reads at once.
READ_CHUNK = 1024 * 1024
#: Seconds between two progress lines: on a terminal, and in a log (CI) where lines pile up.
TTY_INTERVAL = 5.0
LOG_INTERVAL = 15.0

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-_])|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
)


def without_escapes(text: str) -> str:
    """``text`` without terminal escapes (colours, cursor moves, OSC titles) and other control
    characters but newlines and tabs, for the report sections of a failed test, which land in
    JUnit XML and CI logs. A ``\\r`` redraw keeps its last state. Pure."""
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return _ESCAPES.sub("", "\n".join(lines))


def step_of(line: str, read: StepReader = command_step) -> str | None:
    """The step ``line`` announces, as the provisioner's ``read`` sees it once colours and
    trailing blanks are gone (a task name, an operation, a command), or None. Pure."""
    return read(_ANSI.sub("", line).rstrip())


def progress_line(label: str, elapsed: float, step: str, width: int = 100) -> str:
    """``debian-12: converging (35 s): TASK [web : Install nginx]``, the step cut to fit. Pure."""
    head = f"{label}: converging ({elapsed:.0f} s)"
    step = " ".join(_ANSI.sub("", step).split())
    room = max(width - len(head) - 2, 10)
    if len(step) > room:
        step = step[: room - 1] + "…"
    return f"{head}: {step}" if step else head


@final
class Throttle:
    """Says when the next progress line is due: ``interval`` apart, the first after ``interval``.

    Pure: time is passed in.
    """

    def __init__(self, started: float, interval: float) -> None:
        self._next = started + interval
        self._interval = interval

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        # Catch up after a stall without a burst of lines.
        while self._next <= now:
            self._next += self._interval
        return True


@final
class ConvergeProgress:
    """Live progress of one converge: node, current step, elapsed seconds, every few seconds.

    While it is entered (``with progress:``) a daemon thread reads what the converge appended to
    its log (``log``, from its size at entry; the session writes it as output arrives, secrets
    already masked) and hands a line to ``say`` when one is due: every :data:`TTY_INTERVAL`
    seconds on a terminal, every :data:`LOG_INTERVAL` seconds otherwise (a CI log), and never
    for a converge shorter than that. The step is the last one the tool announced, as
    ``steps`` (the provisioner's :func:`~pytest_infranode.provisioners.base.step_reader`) reads
    its lines, else its last output line. Output can also be given to :meth:`feed`.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        label: str,
        *,
        tty: bool,
        log: Path | None = None,
        steps: StepReader = command_step,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._say = say
        self._steps = steps
        self._label = label
        self._log = log
        self._offset = 0
        self._clock = clock
        self._interval = TTY_INTERVAL if tty else LOG_INTERVAL
        self._started = clock()
        self._throttle = Throttle(self._started, self._interval)
        self._pending = b""
        self._step = ""
        self._last = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def feed(self, chunk: bytes) -> None:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        self._pending = self._pending[-LINE_MAX:]  # a line without end: its last part is enough
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r").strip()
            if not line:
                continue
            self._last = line
            step = step_of(line, self._steps)
            if step is not None:
                self._step = step

    @property
    def step(self) -> str:
        return self._step or self._last

    def tick(self, now: float) -> str | None:
        """The progress line, when one is due at ``now``."""
        if not self._throttle.due(now):
            return None
        return progress_line(self._label, now - self._started, self.step)

    def _read_log(self) -> None:
        if self._log is None:
            return
        try:
            with open(self._log, "rb") as log:
                log.seek(self._offset)
                # A chunk at a time: a converge may append gigabytes between two reads.
                while data := log.read(READ_CHUNK):
                    self._offset += len(data)
                    self.feed(data)
        except OSError:
            return

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self._interval)):
            self._read_log()
            line = self.tick(self._clock())
            if line is None:
                continue
            try:
                self._say(line)
            except Exception:  # progress is best effort; the converge goes on without it
                return

    def __enter__(self) -> ConvergeProgress:
        try:
            self._offset = self._log.stat().st_size if self._log is not None else 0
        except OSError:
            self._offset = 0
        self._started = self._clock()
        self._throttle = Throttle(self._started, self._interval)
        self._thread = threading.Thread(
            target=self._run, name=f"infranode-progress-{self._label}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@final
class ProgressPlugin:
    """Wraps every converge (built-in or taken over by a conftest.py) in a :class:`ConvergeProgress`.

    Registered by the pytest plugin with its ``say`` (the ``infranode:`` terminal lines) and the
    directory of the converge logs.
    """

    def __init__(self, say: Callable[[str], None], log_dir: Path, *, tty: bool) -> None:
        self._say = say
        self._log_dir = log_dir
        self._tty = tty

    def progress_of(self, node: Node, provisioner: Provisioner) -> ConvergeProgress:
        """The progress of ``node``'s converge, read from its log with ``provisioner``'s steps."""
        label = node.short_name or node.platform.name
        log = self._log_dir / f"{node.name}.converge.log"
        return ConvergeProgress(self._say, label, tty=self._tty, log=log, steps=step_reader(provisioner))

    def progress_of_run(self, label: str, log: Path, provisioner: Provisioner) -> ConvergeProgress:
        """The progress of one run over several nodes (``converge_together``: no converge hook
        per node), read from that run's log: ``server-1, client-1: converging (35 s): TASK [...]``."""
        return ConvergeProgress(self._say, label, tty=self._tty, log=log, steps=step_reader(provisioner))

    @hookimpl(wrapper=True)
    def pytest_infranode_converge(
        self, node: Node, provisioner: Provisioner
    ) -> Generator[None, ConvergeResult | None, ConvergeResult | None]:
        with self.progress_of(node, provisioner):
            return (yield)
