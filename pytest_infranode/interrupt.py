"""The session's interrupt: set once by Ctrl-C or SIGTERM, seen by the work under way.

The main thread stops waiting at once (the signal raises KeyboardInterrupt there); the work in
bring-up threads is told to stop: each step checks :meth:`Cancel.check`, and what blocks (a
runner-side tool, an image build) registers how to end it (:func:`stopping`). What each
thread is doing is kept (:func:`phase`) so that the session can say where it was interrupted.

Code deep in a thread (the provisioners' runner tools, the engine's builds) reaches the
session's :class:`Cancel` through a context variable that the bring-up binds in each of its
threads (:meth:`Cancel.bound`); without one bound, :func:`stopping` and :func:`phase` do
nothing. Pure apart from ``threading``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from collections.abc import Iterator
from typing import ParamSpec
from typing import TypeVar
from typing import final

from pytest_infranode.errors import Interrupted

__all__ = ["Cancel", "current", "now", "phase", "stopping"]

P = ParamSpec("P")
T = TypeVar("T")


@final
class Cancel:
    """Set once; then every registered stop is called and every :meth:`check` raises."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.RLock()  # a signal handler may set it while the main thread holds it
        self._stops: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._phases: dict[int, list[str]] = {}
        self.reason = ""
        """What interrupted the session (``SIGINT``, ``SIGTERM``), once set."""
        self.interrupted_during: tuple[str, ...] = ()
        """What the bring-up threads were doing when it was set (innermost step of each)."""

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, reason: str) -> None:
        """Interrupt: note what the threads are doing, then stop what blocks them (once)."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self.interrupted_during = self.phases()
            self._event.set()
            stops = list(self._stops.values())
        for stop in stops:
            with contextlib.suppress(Exception):  # a process already gone, a closed socket
                stop()

    def check(self, before: str = "") -> None:
        """Raise :class:`Interrupted` once the session is interrupted (between two steps)."""
        if self._event.is_set():
            raise Interrupted(
                f"interrupted ({self.reason})" + (f" before {before}" if before else ""),
                fix="the session removes its nodes and ends",
            )

    def phases(self) -> tuple[str, ...]:
        """The innermost step of each thread in a :func:`phase`, in the order they began."""
        with self._lock:
            return tuple(stack[-1] for stack in self._phases.values() if stack)

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Make this the cancel of the work run in this thread (for :func:`stopping`, :func:`phase`)."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)

    def wrap(self, job: Callable[P, T]) -> Callable[P, T]:
        """``job`` run with this cancel bound, for a thread pool."""

        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.bound():
                return job(*args, **kwargs)

        return run

    @contextlib.contextmanager
    def _stopping(self, stop: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            key = self._next
            self._next += 1
            self._stops[key] = stop
            already = self._event.is_set()
        try:
            if already:
                stop()
            yield
        finally:
            with self._lock:
                del self._stops[key]

    def _now(self, what: str) -> None:
        with self._lock:
            stack = self._phases.get(threading.get_ident())
            if stack:
                stack[-1] = what

    @contextlib.contextmanager
    def _phase(self, what: str) -> Iterator[None]:
        ident = threading.get_ident()
        with self._lock:
            self._phases.setdefault(ident, []).append(what)
        try:
            yield
        finally:
            with self._lock:
                stack = self._phases.get(ident, [])
                if stack:
                    stack.pop()
                if not stack:
                    self._phases.pop(ident, None)


_current: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("infranode_cancel", default=None)


def current() -> Cancel | None:
    """The cancel bound in this thread, if any."""
    return _current.get()


def stopping(stop: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
    """While in the block, an interrupt calls ``stop`` (from the signal's thread): kill the
    process, close the stream the block reads. Called at once if the session is already
    interrupted. Nothing without a bound cancel."""
    cancel = _current.get()
    return cancel._stopping(stop) if cancel is not None else contextlib.nullcontext()


def phase(what: str) -> contextlib.AbstractContextManager[None]:
    """While in the block, this thread is doing ``what`` ("the converge of web-1"), for the
    line that says where the session was interrupted. Nothing without a bound cancel."""
    cancel = _current.get()
    return cancel._phase(what) if cancel is not None else contextlib.nullcontext()


def now(what: str) -> None:
    """The innermost :func:`phase` of this thread goes on as ``what`` (the converge's second
    run: "the idempotence run of web-1"), until that phase ends."""
    cancel = _current.get()
    if cancel is not None:
        cancel._now(what)
