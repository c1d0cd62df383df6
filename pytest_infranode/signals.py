"""SIGINT and SIGTERM for an infranode session: the pytest glue's side of an interrupt (the
session's side is :mod:`pytest_infranode.interrupt`, the cancel its threads check)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING
from typing import Any

import pytest

if TYPE_CHECKING:
    from pytest_infranode.session import InfraSession


class SignalHandlers:
    """SIGINT and SIGTERM for an infranode session (installed in the main thread only).

    The first one tells the session to stop the work under way (``InfraSession.interrupt``)
    and, until the teardown begins, raises KeyboardInterrupt in the main thread as Ctrl-C does:
    pytest ends the run with "!!! KeyboardInterrupt !!!" and exit code 2; SIGTERM (a cancelled
    CI job) the same. During the teardown nothing is raised (a traceback there would skip the
    removal): the teardown stops waiting for the work under way and the exit code is 2. A second
    signal only says that the removal goes on; a third ends the process at once (exit code 2),
    leaving the removal to the watchdog. The previous handlers are restored at the end.
    """

    def __init__(self, infra: InfraSession, say: Callable[[str], None]) -> None:
        self.infra = infra
        self.say = say
        self.raising = True
        """False from the teardown on: a signal then must not unwind it."""
        self.again = 0

    def install(self, config: pytest.Config) -> None:
        if sys.platform == "win32":  # pragma: no cover
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(signum)
                if signum == signal.SIGINT and previous is not signal.default_int_handler:
                    continue  # ignored (a background job), or someone else's: leave it alone
                signal.signal(signum, self.on_signal)
            except ValueError:  # not in the main thread (an embedding runner): leave it alone
                return
            config.add_cleanup(self._restorer(signum, previous))

    @staticmethod
    def _restorer(signum: int, previous: Any) -> Callable[[], None]:
        def restore() -> None:
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

        return restore

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.infra.cancel.is_set:
            self.infra.interrupt(name)
            if self.raising:
                raise KeyboardInterrupt(name) if signum != signal.SIGINT else KeyboardInterrupt()
            return
        self.again += 1
        if self.again == 1:
            self._tell(
                f"interrupted again ({name}): still removing the nodes of session "
                f"{self.infra.session_id}; once more leaves them to the watchdog"
            )
            return
        self._tell(
            f"interrupted a third time ({name}): exiting now; the watchdog removes the nodes of "
            f"session {self.infra.session_id}"
        )
        os._exit(int(pytest.ExitCode.INTERRUPTED))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """A KeyboardInterrupt that did not come through :meth:`on_signal` (raised by a test,
        or SIGINT under someone else's handler) stops the session's work too."""
        if isinstance(excinfo.value, KeyboardInterrupt) and not self.infra.cancel.is_set:
            self.infra.interrupt("KeyboardInterrupt")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        """From here on a signal must not raise: it would unwind the removal."""
        self.raising = False
        self.infra.activity = "the teardown"

    def _tell(self, line: str) -> None:
        with contextlib.suppress(Exception):  # the main thread may be writing to the terminal itself
            self.say(line)
