"""Why a systemd unit of a node failed or was skipped, and the setting that fixes it. Pure.

The facts are read inside the node by :data:`FACTS` (``systemctl show`` and the unit's last
journal lines), parsed by :func:`parse`, and each unit is classified by :func:`diagnose`: unit
facts in, a cause and a fix out. The causes are the ones measured on Debian 12 and 13 nodes
(docs/systemd-nodes.md, "When a unit fails"): a capability the node lacks (named as dangerous
when it reaches the host), a condition, a kernel feature no container has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import final

from pytest_infranode.platforms.package_managers import MASKED_UNITS

# Printed by the node's /bin/sh: for each failed unit, and each enabled service a condition
# skipped after the boot finished (a converge started it: a package's postinst, `enable --now`;
# the base system's own skips at boot, e2scrub_reap's CAP_SYS_RAWIO or getty@tty1's, are the
# image's, not news), its systemd facts and the last lines of its journal. One exec for all.
FACTS = r"""skipped() {
  set -- $(systemctl list-units --type=service --all --state=inactive --no-legend --plain 2>/dev/null |
    awk '{print $1}')
  [ $# -gt 0 ] || return 0
  booted=$(systemctl show -p FinishTimestampMonotonic --value 2>/dev/null)
  systemctl show -p Id,ConditionResult,UnitFileState,ConditionTimestampMonotonic "$@" 2>/dev/null |
    awk -F= -v booted="${booted:-0}" '
    function out() {if (c == "no" && s == "enabled" && t + 0 > booted + 0) print id; id = c = s = ""; t = 0}
    /^Id=/ {id = $2} /^ConditionResult=/ {c = $2} /^UnitFileState=/ {s = $2}
    /^ConditionTimestampMonotonic=/ {t = $2} /^$/ {out()} END {out()}'
}
for u in $(systemctl --failed --no-legend --plain 2>/dev/null | awk '{print $1}') $(skipped); do
  echo "@@unit $u"
  systemctl show -p Id,ActiveState,Result,ExecMainStatus,ConditionResult "$u" 2>/dev/null
  echo "@@journal"
  journalctl -u "$u" -n 12 --no-pager -o cat 2>/dev/null
done
"""

DANGEROUS_CAPS: Mapping[str, str] = {
    "SYS_TIME": "it lets the node set the host's clock",
    "AUDIT_CONTROL": "it lets the node change the host kernel's audit rules",
    "SYS_MODULE": "it lets the node load modules into the host's kernel",
    "SYS_RAWIO": "it lets the node reach the host's devices and memory",
    "SYS_BOOT": "it lets the node reboot the host",
}
"""Capabilities a unit may ask for that act on the host, not on the node: never defaults, and
named as dangerous where a fix offers them."""

FIX_URL = "docs/systemd-nodes.md#when-a-unit-fails"


@final
@dataclass(frozen=True, slots=True)
class UnitFacts:
    """What systemd says of one unit of a node.

    :param unit: its name (``redis-server.service``).
    :param properties: ``systemctl show`` properties (``Result``, ``ExecMainStatus``, …).
    :param journal: its last journal lines, oldest first.
    """

    unit: str
    properties: Mapping[str, str] = field(default_factory=dict)
    journal: tuple[str, ...] = ()

    @property
    def skipped(self) -> bool:
        return (
            self.properties.get("ConditionResult") == "no" and self.properties.get("ActiveState") != "failed"
        )


@final
@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why one unit does not run, and what fixes it.

    :param unit: the unit.
    :param cause: what systemd says, in a sentence.
    :param fix: the infranode.yaml setting that fixes it, or why no container can have it.
    :param possible: False when no setting can make it run in a container.
    :param evidence: the journal line the cause was read from ("" when none).
    """

    unit: str
    cause: str
    fix: str
    possible: bool = True
    evidence: str = ""

    def render(self) -> str:
        lines = [f"{self.unit}: {self.cause}", f"  fix: {self.fix}"]
        if self.evidence:
            lines.append(f"  journal: {self.evidence}")
        return "\n".join(lines)


def parse(text: str) -> tuple[UnitFacts, ...]:
    """The output of :data:`FACTS` as one :class:`UnitFacts` per unit, in its order."""
    found: list[UnitFacts] = []
    unit = ""
    props: dict[str, str] = {}
    journal: list[str] = []
    in_journal = False

    def flush() -> None:
        if unit and all(f.unit != unit for f in found):
            found.append(UnitFacts(unit, dict(props), tuple(journal)))

    for line in text.splitlines():
        if line.startswith("@@unit "):
            flush()
            unit, props, journal, in_journal = line[len("@@unit ") :].strip(), {}, [], False
        elif line == "@@journal":
            in_journal = True
        elif in_journal:
            if line.strip():
                journal.append(line.rstrip())
        elif "=" in line:
            key, _, value = line.partition("=")
            props[key] = value
    flush()
    return tuple(found)


# systemd 252 (Debian 12): "… was skipped because of an unmet condition check (ConditionX=v)";
# systemd 257 (Debian 13): "… skipped, unmet condition check ConditionX=v".
_CONDITION = re.compile(r"unmet condition check \(?(\w+)=([^)\s]*)")
_FS_TYPE = re.compile(r"unknown filesystem type '([^']+)'")
_MASKED = re.compile(r"Unit (\S+) is masked")


def _grep(facts: UnitFacts, *needles: str) -> str:
    """The last journal line holding the first of ``needles`` found ("" when none is)."""
    for needle in needles:
        for line in reversed(facts.journal):
            if needle in line:
                return line.strip()
    return ""


def _capability_fix(cap: str, why: str) -> tuple[str, bool]:
    if cap in DANGEROUS_CAPS:
        return (
            f"no safe setting: `capabilities: [{cap}]` on the node would do it, but it is dangerous: "
            f"{DANGEROUS_CAPS[cap]}, so it is never a default ({FIX_URL})",
            False,
        )
    return f"add `capabilities: [{cap}]` to the node in infranode.yaml ({why})", True


def diagnose(facts: UnitFacts) -> Diagnosis:
    """The cause of one unit's failure or skip, and its fix. Pure."""
    unit = facts.unit
    condition = next((m for line in facts.journal if (m := _CONDITION.search(line))), None)
    if condition is not None:
        kind, value = condition.group(1), condition.group(2)
        evidence = condition.group(0)
        if kind == "ConditionCapability":
            cap = value.lstrip("!").removeprefix("CAP_")
            fix, possible = _capability_fix(cap, "it acts inside the node's own namespaces")
            return Diagnosis(unit, f"skipped: its {kind}={value} is not met", fix, possible, evidence)
        if kind == "ConditionVirtualization" and "container" in value:
            return Diagnosis(
                unit,
                f"skipped: its {kind}={value} says it does not run in a container",
                "no container can have it: the unit itself refuses to run in one",
                False,
                evidence,
            )
        return Diagnosis(
            unit,
            f"skipped: its {kind}={value} is not met in the node",
            "make the condition true in the node (a file, a kernel setting), or expect it "
            f"skipped; {FIX_URL}",
            True,
            evidence,
        )
    if line := _grep(facts, "failed with result 'dependency'", "Dependency failed for"):
        return Diagnosis(
            unit,
            "not started: a unit it needs failed",
            "the fix of the unit it needs (listed here too, or `systemctl list-dependencies "
            f"{unit}` in the node)",
            True,
            line,
        )
    if facts.skipped:
        return Diagnosis(
            unit,
            "skipped: a condition of the unit is not met in the node",
            f"read which: `systemctl show -p Conditions {unit}` in the node (`infranode login`); {FIX_URL}",
        )
    if line := _grep(facts, "unknown filesystem type"):
        fs = m.group(1) if (m := _FS_TYPE.search(line)) else "?"
        return Diagnosis(
            unit,
            f"the kernel has no {fs!r} file system for the node",
            f"no container can have it: {fs} is a kernel module only the host can load "
            "(and a node shares the host's kernel)",
            False,
            line,
        )
    if line := _grep(facts, " is masked"):
        masked = m.group(1) if (m := _MASKED.search(line)) else ""
        if masked in MASKED_UNITS:
            return Diagnosis(
                unit,
                f"it needs {masked}, masked in the prepared image",
                f"no container can have it: {MASKED_UNITS[masked]}",
                False,
                line,
            )
        return Diagnosis(
            unit, f"it needs a masked unit ({masked})", f"unmask {masked} in the converge", True, line
        )
    if facts.properties.get("ExecMainStatus") == "217" or (
        line := _grep(facts, "Failed to set up user namespacing")
    ):
        return Diagnosis(
            unit,
            "217/USER: systemd could not set up the unit's user namespace (PrivateUsers= with ProtectProc=)",
            "add SYS_PTRACE to the node: `capabilities: [SYS_PTRACE]` (safe: ptrace of the node's own "
            "processes; not a default, because a daemon without it could start no node)",
            True,
            _grep(facts, "user namespacing", "217/USER"),
        )
    if unit.startswith("audit") or (line := _grep(facts, "audit daemon", "audit rules")):
        fix, possible = _capability_fix("AUDIT_CONTROL", "")
        return Diagnosis(
            unit,
            "the kernel's audit subsystem is the host's: one for the whole machine, shared by every "
            "container",
            "no container can have its own audit; " + fix,
            False,
            _grep(facts, "must be root", "Operation not permitted", "audit"),
        )
    line = _grep(facts, "Could not process rule: Operation not permitted", "iptables")
    if "Could not process rule" in line or ("iptables" in line and "Permission denied" in line):
        fix, _ = _capability_fix("NET_ADMIN", "the node's own network namespace")
        return Diagnosis(
            unit,
            "the firewall rules were refused: the node lacks NET_ADMIN",
            fix + "; a default of the systemd platforms",
            True,
            line,
        )
    if line := _grep(facts, "Cannot assign requested address"):
        return Diagnosis(
            unit,
            "it listens on an address the node does not have",
            "IPv6 on the loopback (::1) is a default (`net.ipv6.conf.lo.disable_ipv6: '0'`); for "
            "others, a node's `sysctls:` (`net.ipv6.conf.all.disable_ipv6: '0'`) or the service's "
            "own listen address",
            True,
            line,
        )
    if line := _grep(facts, "Operation not permitted", "Permission denied", "Read-only file system"):
        return Diagnosis(
            unit,
            "the kernel refused it something the node may not do",
            "a capability (`capabilities:`) or a namespaced kernel setting (`sysctls:`) of the node, "
            f"if the journal line names one the node's namespaces own; otherwise the host's ({FIX_URL})",
            True,
            line,
        )
    result = facts.properties.get("Result", "") or "unknown"
    status = facts.properties.get("ExecMainStatus", "")
    return Diagnosis(
        unit,
        f"failed (result {result}" + (f", status {status})" if status and status != "0" else ")"),
        f"read its journal in the node: `journalctl -u {unit}` (`infranode login`); {FIX_URL}",
        True,
        facts.journal[-1].strip() if facts.journal else "",
    )


def report(facts: tuple[UnitFacts, ...], node: str) -> str | None:
    """What to tell the user of ``node`` (``name (platform)``), or None when all units run."""
    if not facts:
        return None
    failed = [f.unit for f in facts if not f.skipped]
    skipped = [f.unit for f in facts if f.skipped]
    head = "; ".join(
        part
        for part in (
            f"failed units: {', '.join(failed)}" if failed else "",
            f"enabled but skipped: {', '.join(skipped)}" if skipped else "",
        )
        if part
    )
    return f"{node}: {head}\n" + "\n".join(diagnose(f).render() for f in facts)
