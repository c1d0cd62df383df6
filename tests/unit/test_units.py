"""Why a unit does not run, from the facts systemd gave on real Debian 12 and 13 nodes (captured
with ``systemctl show`` and ``journalctl -u`` after installing the packages named)."""

from __future__ import annotations

import pytest

from pytest_infranode import units
from pytest_infranode.units import UnitFacts

FAILED = {"ActiveState": "failed", "Result": "exit-code", "ConditionResult": "yes"}

# Debian 12, redis-server 7.0 (PrivateUsers=true, ProtectProc=invisible), without SYS_PTRACE.
REDIS = UnitFacts(
    "redis-server.service",
    {**FAILED, "ExecMainStatus": "217"},
    (
        "redis-server.service: Failed to set up user namespacing: No such file or directory",
        "redis-server.service: Failed at step USER spawning /usr/bin/redis-server: No such file or directory",
        "redis-server.service: Main process exited, code=exited, status=217/USER",
        "redis-server.service: Failed with result 'exit-code'.",
        "Failed to start redis-server.service - Advanced key-value store.",
    ),
)
# Debian 12, chrony.
CHRONY = UnitFacts(
    "chrony.service",
    {"ActiveState": "inactive", "Result": "success", "ConditionResult": "no"},
    (
        "chrony.service - chrony, an NTP client/server was skipped because of an unmet condition "
        "check (ConditionCapability=CAP_SYS_TIME).",
    ),
)
# Debian 12 and 13, nfs-kernel-server (before proc-fs-nfsd.mount was masked).
NFSD = UnitFacts(
    "proc-fs-nfsd.mount",
    FAILED,
    (
        "Mounting proc-fs-nfsd.mount - NFSD configuration filesystem...",
        "mount: /proc/fs/nfsd: unknown filesystem type 'nfsd'.",
        "       dmesg(1) may have more information after failed mount system call.",
        "proc-fs-nfsd.mount: Mount process exited, code=exited, status=32/n/a",
        "proc-fs-nfsd.mount: Failed with result 'exit-code'.",
    ),
)
# Debian 12, nftables without NET_ADMIN.
NFT = UnitFacts(
    "nftables.service",
    {**FAILED, "ExecMainStatus": "1"},
    (
        "\tchain forward {",
        "\t      ^^^^^^^",
        "/etc/nftables.conf:12:8-13: Error: Could not process rule: Operation not permitted",
        "\tchain output {",
        "nftables.service: Main process exited, code=exited, status=1/FAILURE",
        "nftables.service: Failed with result 'exit-code'.",
    ),
)
# Debian 13, auditd: its audit-rules.service.
AUDIT_RULES = UnitFacts(
    "audit-rules.service",
    {**FAILED, "ExecMainStatus": "4"},
    (
        "Starting audit-rules.service - Load Audit Rules...",
        "/usr/sbin/augenrules: No change",
        "You must be root to run this program.",
        "audit-rules.service: Main process exited, code=exited, status=4/NOPERMISSION",
    ),
)
# Debian 12, auditd.
AUDITD = UnitFacts(
    "auditd.service",
    {**FAILED, "ExecMainStatus": "0"},
    (
        "Cannot change priority (Operation not permitted)",
        "The audit daemon is exiting.",
        "auditd.service: Control process exited, code=exited, status=1/FAILURE",
    ),
)


def test_redis_217_user_names_sys_ptrace() -> None:
    d = units.diagnose(REDIS)
    assert d.cause.startswith("217/USER: systemd could not set up the unit's user namespace")
    assert "capabilities: [SYS_PTRACE]" in d.fix
    assert d.possible
    assert d.evidence == "redis-server.service: Failed to set up user namespacing: No such file or directory"


def test_a_time_daemon_skipped_for_cap_sys_time_is_named_dangerous() -> None:
    d = units.diagnose(CHRONY)
    assert d.cause == "skipped: its ConditionCapability=CAP_SYS_TIME is not met"
    assert "`capabilities: [SYS_TIME]`" in d.fix
    assert "dangerous: it lets the node set the host's clock" in d.fix
    assert not d.possible
    assert CHRONY.skipped


def test_a_kernel_file_system_is_impossible() -> None:
    d = units.diagnose(NFSD)
    assert d.cause == "the kernel has no 'nfsd' file system for the node"
    assert d.fix.startswith("no container can have it: nfsd is a kernel module only the host can load")
    assert not d.possible


def test_a_refused_firewall_names_net_admin() -> None:
    d = units.diagnose(NFT)
    assert d.cause == "the firewall rules were refused: the node lacks NET_ADMIN"
    assert "`capabilities: [NET_ADMIN]`" in d.fix
    assert "Could not process rule: Operation not permitted" in d.evidence


@pytest.mark.parametrize("facts", [AUDIT_RULES, AUDITD], ids=["debian-13", "debian-12"])
def test_audit_is_the_hosts_and_its_grant_is_dangerous(facts: UnitFacts) -> None:
    d = units.diagnose(facts)
    assert "the kernel's audit subsystem is the host's" in d.cause
    assert "no container can have its own audit" in d.fix
    assert "AUDIT_CONTROL" in d.fix
    assert "dangerous" in d.fix
    assert not d.possible


def test_a_masked_dependency_names_the_reason_of_the_mask() -> None:
    facts = UnitFacts(
        "nfs-server.service",
        FAILED,
        ("Failed to start nfs-server.service: Unit proc-fs-nfsd.mount is masked.",),
    )
    d = units.diagnose(facts)
    assert d.cause == "it needs proc-fs-nfsd.mount, masked in the prepared image"
    assert "a module only the host can load" in d.fix
    assert not d.possible


def test_a_missing_listen_address_names_the_ipv6_sysctl() -> None:
    facts = UnitFacts("x.service", FAILED, ("bind(): Cannot assign requested address",))
    assert "net.ipv6.conf.lo.disable_ipv6" in units.diagnose(facts).fix


def test_an_unknown_failure_points_at_the_journal() -> None:
    facts = UnitFacts(
        "boom.service", {**FAILED, "ExecMainStatus": "1"}, ("boom.service: Failed with result 'exit-code'.",)
    )
    d = units.diagnose(facts)
    assert d.cause == "failed (result exit-code, status 1)"
    assert d.fix.startswith("read its journal in the node: `journalctl -u boom.service`")


def test_parse_reads_the_facts_script_output() -> None:
    text = (
        "@@unit boom.service\nActiveState=failed\nResult=exit-code\nExecMainStatus=1\nConditionResult=yes\n"
        "@@journal\nboom.service: Failed with result 'exit-code'.\n\n"
        "@@unit chrony.service\nActiveState=inactive\nConditionResult=no\n@@journal\n"
        + CHRONY.journal[0]
        + "\n"
    )
    found = units.parse(text)
    assert [f.unit for f in found] == ["boom.service", "chrony.service"]
    assert found[0].properties["ExecMainStatus"] == "1"
    assert found[1].journal == CHRONY.journal
    report = units.report(found, "n (debian-12)")
    assert report is not None
    assert (
        report.splitlines()[0]
        == "n (debian-12): failed units: boom.service; enabled but skipped: chrony.service"
    )
    assert "chrony.service: skipped: its ConditionCapability=CAP_SYS_TIME is not met" in report
    assert units.report((), "n (debian-12)") is None


def test_a_skip_without_its_condition_in_the_journal_says_where_to_read_it() -> None:
    facts = UnitFacts("systemd-pstore.service", {"ActiveState": "inactive", "ConditionResult": "no"})
    d = units.diagnose(facts)
    assert d.cause == "skipped: a condition of the unit is not met in the node"
    assert "`systemctl show -p Conditions systemd-pstore.service`" in d.fix


def test_debian_13s_skip_line_and_a_failed_dependency() -> None:
    chrony = UnitFacts(
        "chrony.service",
        {"ActiveState": "inactive", "ConditionResult": "no"},
        (
            "chrony.service - chrony, an NTP client/server skipped, unmet condition check "
            "ConditionCapability=CAP_SYS_TIME",
        ),
    )
    assert units.diagnose(chrony).cause == "skipped: its ConditionCapability=CAP_SYS_TIME is not met"
    auditd = UnitFacts(
        "auditd.service",
        {"ActiveState": "inactive", "ConditionResult": "no"},
        (
            "Dependency failed for auditd.service - Security Audit Logging Service.",
            "auditd.service: Job auditd.service/start failed with result 'dependency'.",
        ),
    )
    d = units.diagnose(auditd)
    assert d.cause == "not started: a unit it needs failed"
    assert d.evidence == "auditd.service: Job auditd.service/start failed with result 'dependency'."
