"""A node behaves like a server where that costs no safety, against a real daemon: ``::1`` on its
loopback, its own ``sysctls:``, a healthy boot that is ``running``, not ``degraded``."""

from __future__ import annotations

import json
import shlex
import uuid
import warnings
from collections.abc import Callable
from collections.abc import Iterator

import pytest

from pytest_infranode.engine import Engine
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog
from tests.integration.conftest import InfraRun
from tests.integration.test_boot import wanted_at_boot

Run = Callable[..., InfraRun]

BIND_V6 = (
    "import socket; s = socket.socket(socket.AF_INET6); s.bind(('::1', 8080)); s.listen(); "
    "c = socket.create_connection(('::1', 8080)); print('bound', c.getpeername()[0])"
)


@pytest.fixture(params=["debian-12", "debian-13"])
def node(engine: Engine, request: pytest.FixtureRequest) -> Iterator[Node]:
    platform = Catalog().get(request.param)
    image, _cached = engine.prepared_image(platform, lambda _msg: None)
    made = Node(engine, platform, session_id=f"fid{uuid.uuid4().hex[:12]}", image=image)
    made.create()
    try:
        yield made
    finally:
        made.remove()


def test_a_fresh_node_boots_running_with_ipv6_on_its_loopback_only(node: Node) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither degraded nor unable to sandbox
        node.start(boot_timeout=120)
    state = node.run_argv(["systemctl", "is-system-running"]).stdout.decode().strip()
    failed = node.run_argv(["systemctl", "--failed", "--no-legend", "--plain"]).stdout.decode()
    assert (state, failed.strip()) == ("running", "")
    bound = node.run_argv(["python3", "-c", BIND_V6])
    assert bound.stdout.decode().strip() == "bound ::1", bound.stderr.decode()
    # Only the loopback: eth0 keeps no IPv6 address on the daemon's bridge.
    eth0 = node.run_argv(["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]).stdout.decode().strip()
    assert eth0 == "1"


def test_a_nodes_sysctls_reach_it(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        nodes:
          router:
            sysctls: {net.ipv4.ip_forward: '1', net.ipv4.conf.all.rp_filter: 2}
        """,
    )
    pytester.makepyfile(
        """
        def test_forwarding(host):
            assert host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"
            assert host.file("/proc/sys/net/ipv4/conf/all/rp_filter").content_string.strip() == "2"
            assert host.file("/proc/sys/net/ipv6/conf/lo/disable_ipv6").content_string.strip() == "0"
        """
    )
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(passed=1)


def test_a_bad_sysctl_is_refused_before_any_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode="nodes:\n  web:\n    sysctls: {vm.swappiness: '10'}\n")
    pytester.makepyfile("def test_x(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-12")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(
        [
            "*sysctl 'vm.swappiness' of node 'web' is not a kernel setting a container may have*",
            "*infranode.yaml:3 (nodes.web.sysctls)*",
        ]
    )
    assert not run.session_id  # no session started: no node was made


NEEDS_FS = b"""[Unit]
Description=A boot job that mounts a kernel file system the node cannot have
[Service]
Type=oneshot
ExecStart=/bin/mount -t nfsd nfsd /mnt
"""


def test_a_degraded_boot_says_why_and_that_no_container_can_have_it(engine: Engine, node: Node) -> None:
    wanted_at_boot(engine, node, "needs-fs.service", NEEDS_FS)
    with pytest.warns(InfranodeWarning) as caught:
        node.start(boot_timeout=120)
    text = "\n".join(str(w.message) for w in caught)
    assert "booted degraded; failed units:" in text
    assert "needs-fs.service: the kernel has no 'nfsd' file system for the node" in text
    assert "fix: no container can have it: nfsd is a kernel module only the host can load" in text
    assert "journal: mount: /mnt: unknown filesystem type 'nfsd'" in text


CLOCK = "[Unit]\nConditionCapability=CAP_SYS_TIME\n[Service]\nExecStart=/bin/sleep 600\n"
CLOCK += "[Install]\nWantedBy=multi-user.target\n"
DENIED = '[Service]\nExecStart=/bin/sh -c "echo Operation not permitted; exit 3"\n'
DENIED += "[Install]\nWantedBy=multi-user.target\n"


def test_a_unit_the_converge_leaves_failed_or_skipped_is_diagnosed_with_its_fix(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    inline = [
        f"printf %s {shlex.quote(CLOCK)} > /etc/systemd/system/clock.service",
        f"printf %s {shlex.quote(DENIED)} > /etc/systemd/system/denied.service",
        "systemctl daemon-reload",
        "systemctl enable --now clock.service",
        "systemctl enable --now denied.service || true",
    ]
    pytester.makefile(".yaml", infranode=json.dumps({"provisioner": {"name": "shell", "inline": inline}}))
    pytester.makepyfile(
        """
        def test_clock_runs(host):
            assert host.service("clock").is_running
        """
    )
    run = infra_run("--infra-platform=debian-12", "-rA")
    run.result.assert_outcomes(failed=1)
    out = run.result.stdout.str()
    # After the converge: a warning naming both units.
    assert "after its converge, infranode-" in out
    assert "failed units: denied.service; enabled but skipped: clock.service" in out
    assert "clock.service: skipped: its ConditionCapability=CAP_SYS_TIME is not met" in out
    assert "dangerous: it lets the node set the host's clock" in out
    # The failed test carries the same as a section of its report.
    assert "infranode units of infranode-" in out
    assert "denied.service: the kernel refused it something the node may not do" in out
