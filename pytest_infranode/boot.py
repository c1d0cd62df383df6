"""How a node's boot is waited for: its init running, systemd's own answer asked from inside
the node, a degraded boot's failed units, and whether systemd can sandbox units there.

Reaches the daemon only through the engine it is given.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import final

from pytest_infranode import sandbox
from pytest_infranode import units as unit_facts
from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.errors import NodeError
from pytest_infranode.platforms import Platform

# Waits inside the node for systemd to finish booting: one exec asks every $2 seconds, where an exec
# per question would cost tens of milliseconds each (and CPU the booting node wants). It gives
# up after $1 questions and prints the last answer, so that the caller looks at the container
# and its deadline between rounds. Before systemd's bus is up the answer
# is "offline" (or nothing); "starting" until the boot jobs are done.
BOOT_WAIT = (
    sandbox.PROBE
    + r"""n=$1
command -v systemctl >/dev/null 2>&1 || { echo no-systemctl; exit 0; }
while :; do
  s=$(systemctl is-system-running 2>/dev/null)
  case $s in running|degraded) echo "$s"; sandbox; exit 0 ;; esac
  n=$((n - 1))
  if [ "$n" -le 0 ]; then echo "${s:-unknown}"; exit 0; fi
  sleep "$2"
done
"""
)
BOOT_WAIT_INTERVAL = 0.05  # seconds between two questions
BOOT_WAIT_ROUND = 40  # questions per exec: about 2 s


@final
@dataclass(frozen=True, slots=True)
class Booted:
    """What the boot of a node showed.

    :param degraded_units: systemd's failed units when it booted degraded ("" otherwise).
    :param sandbox: whether systemd can sandbox units in the node (``unknown`` without systemd).
    """

    degraded_units: str = ""
    sandbox: sandbox.Verdict = "unknown"


@final
class BootWait:
    """Waits for the init of one started container to report the machine up."""

    def __init__(
        self, engine: EngineProtocol, container_id: str, platform: Platform, *, name: str, where: str
    ):
        self.engine = engine
        self.container_id = container_id
        self.platform = platform
        self.name = name
        self.where = where

    def wait(self, timeout: float) -> Booted:
        """Until the init runs (and systemd says ``running`` or ``degraded``).

        :raises NodeError: the container stopped, the image has no systemctl or no /bin/sh, or
            systemd did not finish within ``timeout`` seconds; with the container log's tail.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            if self.platform.init != "systemd":
                return Booted()
            answer = self._ask_systemd(deadline)
            if answer is None:
                continue  # PID 1 exited during the wait: said at the next check, with its log
            status, probed = answer
            if status in ("running", "degraded"):
                return self._booted(status, probed)
            if status == "no-systemctl":
                raise NodeError(
                    "the platform boots systemd but the image has no systemctl",
                    where=self.where,
                    fix="install systemd in the image (the platform's `prepare:`), or set `init:` "
                    "to what the image runs",
                )
            if time.monotonic() > deadline:
                raise NodeError(
                    f"systemd did not finish booting in {timeout:g} s (state: {status or 'unknown'})",
                    where=self.where,
                    fix="raise --infra-boot-timeout, or look at the units still starting: "
                    f"`docker exec {self.name} systemctl list-jobs`",
                    detail=self._log_tail(),
                )

    def _check_running(self) -> None:
        state = self.engine.container_state(self.container_id)
        if state != "running":
            raise NodeError(
                f"the node stopped while booting (container state: {state})",
                where=self.where,
                fix="read the init's log below; a systemd node needs cgroups the daemon allows",
                detail=self._log_tail(),
            )

    def _ask_systemd(self, deadline: float) -> tuple[str, str] | None:
        """One round of questions in the node: systemd's last state and the sandbox probe's
        output; None when PID 1 exited meanwhile."""
        left = deadline - time.monotonic()
        questions = max(1, min(BOOT_WAIT_ROUND, int(left / BOOT_WAIT_INTERVAL)))
        argv = ["/bin/sh", "-c", BOOT_WAIT, "sh", str(questions), str(BOOT_WAIT_INTERVAL)]
        try:
            result = self.engine.exec(self.container_id, argv)
        except InfranodeError:
            # PID 1 may exit between the state check and the exec: say so with its log.
            if self.engine.container_state(self.container_id) == "running":
                raise
            return None
        if result.exit_status != 0:
            if self.engine.container_state(self.container_id) != "running":
                return None
            raise NodeError(
                f"cannot wait for systemd in the node: /bin/sh exited with {result.exit_status}",
                where=self.where,
                fix="a systemd platform needs a POSIX /bin/sh in its image",
                detail=(result.stdout + result.stderr).decode(errors="replace")[-2000:],
            )
        status, _, probed = result.stdout.decode(errors="replace").strip().partition("\n")
        return status, probed

    def _booted(self, status: str, probed: str) -> Booted:
        """systemd is up (``running`` or ``degraded``): what the boot showed, and warnings for
        a node that cannot sandbox units and for a degraded boot's failed units."""
        label = f"{self.name} ({self.platform.name})"
        verdict = sandbox.parse(probed)
        self._warn(sandbox.warning(verdict, label))
        if status != "degraded":
            return Booted("", verdict)
        failed = self.engine.exec(self.container_id, ["systemctl", "--failed", "--no-legend", "--plain"])
        units = failed.stdout.decode(errors="replace").strip()
        facts = self.engine.exec(self.container_id, ["/bin/sh", "-c", unit_facts.FACTS])
        why = unit_facts.report(unit_facts.parse(facts.stdout.decode(errors="replace")), label)
        self._warn(
            f"{label} booted degraded; failed units:\n"
            + (units or "(none listed)")
            + (f"\nwhy, and the fix:\n{why.partition(chr(10))[2]}" if why else "")
        )
        return Booted(units, verdict)

    def _log_tail(self) -> str:
        return "--- container log (tail) ---\n" + self.engine.logs(self.container_id, 30)

    @staticmethod
    def _warn(message: str | None) -> None:
        """Said, never silently weaker. The warning points at the code that started the node:
        :meth:`~pytest_infranode.node.Node.start`, which called :meth:`wait`, which called
        :meth:`_booted`, the one caller of this."""
        if message is not None:
            warnings.warn(InfranodeWarning(message), stacklevel=4)
