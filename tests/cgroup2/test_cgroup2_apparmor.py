"""systemd nodes on a real cgroup v2 + AppArmor Docker daemon (the QEMU lab), with the plugin's
defaults and no --privileged: both platforms reach `running`, units are really sandboxed, and the
example, multi-node, idempotence, converge-cache and teardown paths all hold there."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pytest_infranode.engine import Engine
from pytest_infranode.engine import doctor
from tests.cgroup2.conftest import VmRun
from tests.integration.conftest import copy_example
from tests.integration.test_platforms_images import SANDBOXED_UNIT

pytestmark = pytest.mark.slow

Run = Callable[..., VmRun]

# the v1 suite's sandboxed unit, with a memory limit: on v2 the unit gets a cgroup of its own, and
# the limit is applied there (the node's root cgroup hands the memory controller down)
SANDBOXED = re.sub(r"( *)NoNewPrivileges=yes\n", r"\g<0>\g<1>MemoryMax=64M\n", SANDBOXED_UNIT)
assert "MemoryMax=64M" in SANDBOXED


def test_the_lab_daemon_is_cgroup_v2_with_apparmor(vm: Engine, vm_url: str) -> None:
    assert vm.info.cgroup_version == "2"
    assert vm.info.apparmor, vm.info.security
    report = doctor.run_doctor(vm_url, {"PATH": "/usr/bin:/bin"}, wait=30)
    by_check = {f.check: f for f in report.findings if f.status != "info"}
    assert by_check["systemd"].status == "ok", doctor.render_text(report)
    assert "apparmor" in by_check["cgroup"].summary


# One node's spec, run on both daemons: `running`, a `User=nobody` unit with PrivateTmp=,
# ProtectSystem=strict and MemoryMax= in a mount namespace and a cgroup of its own with the limit
# applied, PID 1 in /init.scope of the node's own cgroup subtree, and no process in its root.
SANDBOXED_SPEC = """
        def test_sandboxed(host, infra_node):
            assert infra_node.sandbox == "ok"
            assert host.check_output("systemctl is-system-running") == "running"
            assert host.service("sandboxed").is_running
            pid = host.check_output("systemctl show -p MainPID --value sandboxed")
            assert host.process.get(pid=int(pid)).user == "nobody"
            # its own mount namespace: a private /tmp that PID 1's mount table does not have
            assert "systemd-private-" in host.check_output(f"cat /proc/{pid}/mountinfo")
            assert "systemd-private-" not in host.check_output("cat /proc/1/mountinfo")
            cgroup = host.check_output(f"cut -d: -f3 /proc/{pid}/cgroup")
            assert cgroup == "/system.slice/sandboxed.service"
            assert host.check_output(f"cat /sys/fs/cgroup{cgroup}/memory.max") == str(64 * 1024 * 1024)
            # the plugin's own execs (this one included) never sit in the node's root cgroup
            assert host.check_output("cat /sys/fs/cgroup/cgroup.procs") == ""
            assert "memory" in host.check_output("cat /sys/fs/cgroup/cgroup.subtree_control").split()
            assert host.check_output("cut -d: -f3 /proc/1/cgroup") == "/init.scope"
"""


def test_nodes_boot_running_with_units_really_sandboxed(pytester: pytest.Pytester, vm_run: Run) -> None:
    """debian-12 and debian-13 on the rootful daemon: SANDBOXED_SPEC holds on both."""
    pytester.makefile(".yaml", infranode=SANDBOXED)
    pytester.makepyfile(SANDBOXED_SPEC)
    run = vm_run("--infra-platform=debian-12,debian-13", "-v")
    run.result.assert_outcomes(passed=2)


def test_example_suite(pytester: pytest.Pytester, vm_run: Run) -> None:
    copy_example(pytester, "nginx")
    run = vm_run("-v")
    run.result.assert_outcomes(passed=11)
    run.result.stdout.fnmatch_lines(["*daemon Docker * cgroup v2*"])


def test_multinode_suite(pytester: pytest.Pytester, vm_run: Run) -> None:
    """Both nodes on one session network, converged in order, reachable by name, and the web
    node's published port reached from here (the lab forwards the guest's ephemeral ports)."""
    copy_example(pytester, "multinode")
    run = vm_run("-v")
    run.result.assert_outcomes(passed=7)


def test_idempotence_with_ansible(pytester: pytest.Pytester, vm_run: Run) -> None:
    copy_example(pytester, "ansible")
    run = vm_run("-v", "--infra-idempotence")
    run.result.assert_outcomes(passed=10)
    run.result.stdout.fnmatch_lines(["  debian-12 | debian-12 * changed=0 *"])


def test_converge_cache_hit(pytester: pytest.Pytester, vm_run: Run, vm: Engine) -> None:
    """The second session takes the first one's converged image: no converge, same checks pass."""
    pytester.makefile(
        ".yaml",
        infranode="provisioner:\n  name: shell\n  inline: ['echo cg2-cache > /etc/cg2-marker']\n",
    )
    pytester.makepyfile(
        "def test_marker(host):\n    assert host.file('/etc/cg2-marker').content_string == 'cg2-cache\\n'\n"
    )
    first = vm_run("--infra-platform=debian-12", "--infra-cache=converge")
    first.result.assert_outcomes(passed=1)
    first.result.stdout.fnmatch_lines(["*converge cache miss*"])
    second = vm_run("--infra-platform=debian-12", "--infra-cache=converge")
    second.result.assert_outcomes(passed=1)
    second.result.stdout.fnmatch_lines(["*converge cache hit*converge skipped*"])


# --- rootless Docker (the same guest's rootless dockerd: rootlesskit, dockerd-rootless.sh) ------


def test_the_rootless_daemon_is_rootless_on_cgroup_v2(rootless: Engine, rootless_url: str) -> None:
    assert rootless.info.rootless, rootless.info.security
    assert rootless.info.cgroup_version == "2"
    report = doctor.run_doctor(rootless_url, {"PATH": "/usr/bin:/bin"}, wait=30)
    by_check = {(f.check, f.status): f for f in report.findings}
    assert ("systemd", "ok") in by_check, doctor.render_text(report)
    assert "mounts afresh" in by_check[("systemd", "info")].summary
    daemon_checks = ("engine", "cgroup", "systemd", "container")
    bad = [f for f in report.findings if f.check in daemon_checks and f.status in ("warn", "fail")]
    assert not bad, doctor.render_text(report)


def test_rootless_node_boots_running_with_units_really_sandboxed(
    pytester: pytest.Pytester, rootless_run: Run
) -> None:
    """debian-12 on rootless Docker: the same spec as on the rootful daemon holds."""
    pytester.makefile(".yaml", infranode=SANDBOXED)
    pytester.makepyfile(SANDBOXED_SPEC)
    run = rootless_run("--infra-platform=debian-12", "-v")
    run.result.assert_outcomes(passed=1)
    assert "systemd cannot" not in run.result.stdout.str()  # no sandbox or limits warning


def test_example_suite_on_rootless_docker(pytester: pytest.Pytester, rootless_run: Run) -> None:
    copy_example(pytester, "nginx")
    run = rootless_run("-v", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=11)
