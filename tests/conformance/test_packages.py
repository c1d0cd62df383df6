"""Each package of catalog.py, installed with its defaults on its node: its units active and
answering, once per platform. What is declared impossible (catalog.EXPECTED) is a strict xfail
with its cause: the suite fails when it starts working, as it fails when anything else stops."""

from __future__ import annotations

import re
import shlex
import time

import pytest
import testinfra.host

from pytest_infranode.node import Node
from pytest_infranode.platforms import Platform

from .catalog import Expectation
from .catalog import Package
from .catalog import expectation_of
from .catalog import packages_of

# A unit still starting (rabbitmq-server, slapd) gets this long to become active and listen.
SETTLE_SECONDS = 60.0


def cgroup_version(host: testinfra.host.Host) -> int:
    return 2 if host.check_output("stat -fc %T /sys/fs/cgroup/") == "cgroup2fs" else 1


# systemd's own lines about a unit failing say that it failed, not why: left out of the cause.
CHATTER = re.compile(
    r"Scheduled restart|Start request repeated|Failed with result|Failed to start|^Stopped |^Started |"
    r"^Starting |^Stopping |Consumed .* CPU|Main process exited|Deactivated successfully|Job .* failed"
)


class DeclaredCause(AssertionError):
    """The check failed the way its expectation says (the only failure its strict xfail takes)."""


def why(host: testinfra.host.Host, unit: str) -> str:
    """What systemd says about a unit that is not active: its state, the failed units it waits
    on, and the last lines of its log that are not systemd's own."""
    show = host.run(
        f"systemctl show -p ActiveState,Result,ExecMainStatus,ConditionResult {shlex.quote(unit)}"
    ).stdout.split()
    journal = host.run(f"journalctl -u {shlex.quote(unit)} -n 60 --no-pager -o cat").stdout.splitlines()
    reasons = list(
        dict.fromkeys(line.strip() for line in journal if line.strip() and not CHATTER.search(line))
    )
    failed = host.run("systemctl list-units --failed --plain --no-legend").stdout.splitlines()
    text = " ".join(show) + " | " + " / ".join(reasons[-3:])
    if "Result=dependency" in text or "Dependency failed" in " ".join(journal):
        text += " | failed units: " + ", ".join(line.split()[0] for line in failed if line.strip())
    return text


def declare(request: pytest.FixtureRequest, label: str, platform: str, cgroup: int) -> Expectation | None:
    """Record the cell for the table and, if the entry is declared impossible, mark it so: a
    strict xfail that only its own cause (DeclaredCause) satisfies."""
    expectation = expectation_of(label, platform, cgroup)
    cause = expectation.cause if expectation else ""
    request.node.user_properties.append(("conformance", (label, platform, cgroup, cause)))
    if expectation:
        request.applymarker(pytest.mark.xfail(strict=True, raises=DeclaredCause, reason=cause))
    return expectation


def verdict(request: pytest.FixtureRequest, expectation: Expectation | None, problems: list[str]) -> None:
    seen = "; ".join(problems)
    request.node.user_properties.append(("conformance-seen", seen))
    if expectation and problems and expectation.evidence in seen:
        raise DeclaredCause(f"{expectation.cause}\nseen: {seen}")
    if expectation and problems:
        raise AssertionError(
            f"declared: {expectation.cause} (evidence {expectation.evidence!r}), but seen: {seen}"
        )
    assert not problems, "\n".join(problems)


def problems_of(host: testinfra.host.Host, package: Package) -> list[str]:
    if package.start:
        host.run("systemctl start " + " ".join(shlex.quote(u) for u in package.units))
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        states = {u: host.run(f"systemctl is-active {u}").stdout.strip() for u in package.units}
        settling = any(s in ("activating", "reloading") for s in states.values())
        if not settling or time.monotonic() > deadline:
            break
        time.sleep(1)
    problems = [f"{u} {s}: {why(host, u)}" for u, s in states.items() if s != "active"]
    if problems:
        return problems
    for address in package.listens:
        while not host.socket(address).is_listening:
            if time.monotonic() > deadline:
                problems.append(f"nothing listens on {address}")
                break
            time.sleep(1)
    if package.command:
        run = host.run(package.command)
        if run.rc != 0:
            problems.append(f"`{package.command}` exit {run.rc}: {(run.stderr or run.stdout).strip()[:300]}")
    return problems


def check(
    request: pytest.FixtureRequest, host: testinfra.host.Host, platform: Platform, package: Package
) -> None:
    expectation = declare(request, package.name, platform.name, cgroup_version(host))
    verdict(request, expectation, problems_of(host, package))


@pytest.mark.infra_node("a")
@pytest.mark.parametrize("package", packages_of("a"), ids=lambda p: p.name)
def test_node_a(
    request: pytest.FixtureRequest, host: testinfra.host.Host, infra_platform: Platform, package: Package
) -> None:
    check(request, host, infra_platform, package)


@pytest.mark.infra_node("b")
@pytest.mark.parametrize("package", packages_of("b"), ids=lambda p: p.name)
def test_node_b(
    request: pytest.FixtureRequest, host: testinfra.host.Host, infra_platform: Platform, package: Package
) -> None:
    check(request, host, infra_platform, package)


@pytest.mark.infra_node("a", "b")
def test_boots_running(
    request: pytest.FixtureRequest, host: testinfra.host.Host, infra_platform: Platform, infra_node: Node
) -> None:
    """A healthy node is `running`, not `degraded`: no unit failed."""
    expectation = declare(
        request, f"(boot of node {infra_node.short_name})", infra_platform.name, cgroup_version(host)
    )
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl list-units --failed --plain --no-legend").stdout.splitlines()
    names = ", ".join(line.split()[0] for line in failed if line.strip())
    verdict(request, expectation, [] if state == "running" else [f"{state}; failed: {names}"])
