"""Podman's Docker-compatible API for real (topology 8): a rootful ``podman system service`` on a
private socket, with its own storage, holding ``debian:12`` copied from the host daemon, run
once with crun and once with runc (``--runtime``; tests/integration/lab/podman.py says why).

The whole node lifecycle goes through it: image build, create, start (systemd as PID 1), exec,
copy in (put_archive) and out, remove; and the example suite, whose converge reaches the
Debian mirror through the lab's slirp4netns networking. Started once for the module; podman and
slirp4netns are installed by scripts/ensure-docker.sh on a root Debian machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from pytest_infranode import labels
from pytest_infranode.engine import daemon
from pytest_infranode.engine import doctor
from tests.integration.conftest import copy_example
from tests.integration.lab.podman import RUNTIMES
from tests.integration.lab.podman import LabPodman
from tests.integration.lab.podman import start_podman

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=RUNTIMES)
def podman(request: pytest.FixtureRequest) -> Iterator[LabPodman]:
    # podman refuses a run root longer than 50 characters: pytest's tmp paths are too long
    base = Path(tempfile.mkdtemp(prefix="inft-pm-"))
    try:
        lab = start_podman(base, ["debian:12"], request.param)
        yield lab
        lab.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _client(lab: LabPodman) -> docker.DockerClient:
    return docker.DockerClient(base_url=lab.url, version="1.41")


def _containers_of(lab: LabPodman, session_id: str) -> list[str]:
    client = _client(lab)
    try:
        found = client.api.containers(all=True, filters={"label": f"{labels.SESSION}={session_id}"})
    finally:
        client.close()
    return [str(c["Id"]) for c in found]


def test_podman_is_detected(tmp_path: Path, podman: LabPodman) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    client, info = daemon.connect(podman.url, environ=env, wait=10)
    client.close()
    assert info.podman
    assert info.server_version.startswith(("4.", "5."))
    report = doctor.run_doctor(podman.url, env, wait=10, images=["debian:12"])
    by_check = {f.check: f for f in report.findings}
    assert report.ok, doctor.render_text(report)
    assert by_check["container"].status == "ok"
    assert any("Podman: images load as localhost/NAME" in f.summary for f in report.findings)
    assert info.runtime == podman.runtime
    assert any(f"OCI runtime {podman.runtime})" in f.summary for f in report.findings if f.check == "engine")


def test_systemd_node_lifecycle_through_podman(pytester: pytest.Pytester, podman: LabPodman) -> None:
    """debian-12 as the user has it: prepared image built by Podman, systemd PID 1, a converge that
    copies a file in, exec, a file read back, removal."""
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - echo converged > /etc/infranode-marker
        """,
    )
    pytester.makepyfile(
        """
        def test_marker(host):
            assert host.file("/etc/infranode-marker").content_string == "converged\\n"

        def test_systemd_is_pid_1(host):
            assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"
            state = host.run("systemctl is-system-running --wait").stdout.strip()
            assert state in ("running", "degraded"), host.run("systemctl --failed --no-pager").stdout

        def test_copy_in_and_out(infra_node):
            infra_node.put_files("/opt/drop", {"sub/hello.txt": (b"through podman\\n", 0o640)})
            assert infra_node.get_file("/opt/drop/sub/hello.txt") == b"through podman\\n"
            assert infra_node.run("stat -c %a /opt/drop/sub/hello.txt").stdout == b"640\\n"
        """
    )
    result = pytester.runpytest("-v", "--infra-platform=debian-12", f"--infra-docker-host={podman.url}")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"infranode: daemon Podman * via {podman.url} [[]--infra-docker-host[]]*"])
    session = pytester_session_id(result.stdout.str())
    assert _containers_of(podman, session) == []


def test_plain_node_lifecycle_through_podman(pytester: pytest.Pytester, podman: LabPodman) -> None:
    """A non-systemd node (``init: none``) from the loaded image, named as podman lists it."""
    pytester.makefile(
        ".yaml",
        infranode="""
        platform_definitions:
          plain:
            image: localhost/debian:12
            init: none
            command: ["sleep", "infinity"]
        provisioner:
          name: shell
          inline: ["echo plain > /etc/infranode-marker"]
        """,
    )
    pytester.makepyfile(
        """
        def test_marker(host):
            assert host.file("/etc/infranode-marker").content_string == "plain\\n"
            assert host.run("cat /proc/1/comm").stdout.strip() == "sleep"
        """
    )
    result = pytester.runpytest("--infra-platform=plain", f"--infra-docker-host={podman.url}")
    result.assert_outcomes(passed=1)
    assert _containers_of(podman, pytester_session_id(result.stdout.str())) == []


def test_example_suite_through_podman(pytester: pytest.Pytester, podman: LabPodman) -> None:
    """The example suite (examples/nginx, 11 checks) on a Podman node: its converge installs nginx
    from the Debian mirror (the lab's slirp4netns networking), systemd starts it, the checks pass,
    and nothing of the session is left on Podman."""
    copy_example(pytester, "nginx")
    result = pytester.runpytest("-v", f"--infra-docker-host={podman.url}")
    result.assert_outcomes(passed=11)
    result.stdout.fnmatch_lines(["*test_page_is_served[[]debian-12[]] PASSED*"])
    result.stdout.fnmatch_lines([f"infranode: daemon Podman * via {podman.url} [[]--infra-docker-host[]]*"])
    assert _containers_of(podman, pytester_session_id(result.stdout.str())) == []


def test_failed_pull_says_why_not_no_such_image(pytester: pytest.Pytester, podman: LabPodman) -> None:
    """Podman answers a failed pull with 200 and puts the error in the progress stream; docker-py
    drops it and reports "No such image". The plugin reads the stream and says the real cause."""
    pytester.makefile(
        ".yaml",
        infranode="""
        platform_definitions:
          ghost:
            image: registry.invalid/ghost:1
            init: none
            command: ["sleep", "infinity"]
        provisioner:
          name: shell
          inline: ["true"]
        """,
    )
    pytester.makepyfile("def test_x(host):\n    pass\n")
    result = pytester.runpytest("--infra-platform=ghost", f"--infra-docker-host={podman.url}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pull: image registry.invalid/ghost:1 is not on the daemon and could not be pulled from "
            "registry.invalid/ghost:1: the registry's host name does not resolve*",
        ]
    )
    result.stdout.fnmatch_lines(["*daemon said: *lookup registry.invalid*"])


def pytester_session_id(stdout: str) -> str:
    import re

    match = re.search(r"session ([0-9a-f]{16})", stdout)
    assert match, stdout
    return match.group(1)


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status", encoding="ascii") as fh:
        caps = next(line.split()[1] for line in fh if line.startswith("CapEff:"))
    return bool(int(caps, 16) >> 24 & 1)  # CAP_SYS_RESOURCE = 24


def test_uncapped_rlimits_are_diagnosed(tmp_path: Path, podman: LabPodman) -> None:
    """Podman's default ulimits exceed what a process without CAP_SYS_RESOURCE may set: every
    container start fails, and the doctor's container check names the cause and the
    containers.conf fix. With the capability (some CI machines), the same service just works."""
    url = podman.serve_uncapped()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    report = doctor.run_doctor(url, env, wait=10, images=["debian:12"])
    container = {f.check: f for f in report.findings}["container"]
    if _has_cap_sys_resource():
        assert container.status == "ok", doctor.render_text(report)
        return
    assert container.status == "fail", doctor.render_text(report)
    said = {"runc": "error setting rlimit type", "crun": "setrlimit `RLIMIT_NOFILE`"}[podman.runtime]
    assert said in " ".join(container.evidence), doctor.render_text(report)
    assert f"{podman.runtime} may not raise" in container.summary
    assert "set default_ulimits in containers.conf" in container.fix
