"""pytest-testinfra's own `host` and `--hosts` next to ours, and the `infra_node` API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from collections.abc import Iterator

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import ContainerSpec
from tests.integration.conftest import OWNER
from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

INLINE = 'provisioner: {name: shell, inline: ["echo converged > /etc/infranode-marker"]}\n'

# A spec as one writes it for testinfra alone: only `host`, nothing of pytest-infranode.
DOCKER_SPEC = """
def test_os(host):
    assert host.system_info.distribution == "debian"
    assert host.file("/etc/os-release").contains("bookworm")

def test_commands(host):
    assert host.run("echo hi").stdout == "hi\\n"
    assert host.check_output("id -u") == "0"

def test_users_and_files(host):
    assert host.user("root").uid == 0
    assert host.file("/etc/passwd").user == "root"
"""


def test_without_infra_options_testinfra_is_untouched(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makepyfile(
        """
        def test_local(host):
            assert host.backend.NAME == "local"
            assert host.run("true").rc == 0
        """
    )
    for args in ((), ("--hosts=local://",)):
        run = infra_run("-v", *args)
        run.result.assert_outcomes(passed=1)
        run.result.stdout.fnmatch_lines(["*test_local[[]local[]] PASSED*"])
        run.result.stdout.no_fnmatch_line("*infranode:*")


def test_with_a_platform_host_is_the_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(
        """
        def test_node(host, infra_node):
            assert host.backend.NAME == "infranode"
            assert host.file("/etc/infranode-marker").content_string == "converged\\n"
            assert host.check_output("hostname") == infra_node.name
        """
    )
    run = infra_run("-v", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*test_node[[]debian-12[]] PASSED*"])
    run.result.stdout.no_fnmatch_line("*[[]local[]]*")


@pytest.fixture
def plain_container(engine: Engine) -> Iterator[str]:
    """A debian:12 container made without the plugin, for testinfra's docker:// backend."""
    name = f"infranode-plain-{os.getpid()}-{int(time.time())}"
    spec = ContainerSpec(
        name=name,
        image="debian:12",
        hostname=name,
        labels={labels.PID: OWNER},  # no session label: the plugin's sweeps never touch it
        command=("sleep", "600"),
        init="none",
    )
    cid = engine.create_container(spec)
    try:
        engine.start_container(cid)
        yield name
    finally:
        engine.remove_container(cid)


def test_a_docker_spec_runs_unchanged_against_a_node(
    pytester: pytest.Pytester, infra_run: Run, plain_container: str
) -> None:
    pytester.makepyfile(test_spec=DOCKER_SPEC)
    with_docker = infra_run("-v", f"--hosts=docker://{plain_container}")
    with_docker.result.assert_outcomes(passed=3)
    with_docker.result.stdout.fnmatch_lines([f"*test_os[[]docker://{plain_container}[]] PASSED*"])
    # The same file, not a character changed, against a node.
    pytester.makefile(".yaml", infranode=INLINE)
    with_node = infra_run("-v", "--infra-platform=debian-12")
    with_node.result.assert_outcomes(passed=3)
    with_node.result.stdout.fnmatch_lines(["*test_os[[]debian-12[]] PASSED*"])


def test_infra_node_api(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - mkdir -p /srv && echo api-page > /srv/index.html
            - |
              cat > /etc/systemd/system/page.service <<'UNIT'
              [Service]
              ExecStart=/usr/bin/python3 -m http.server 8080 --directory /srv
              UNIT
              systemctl daemon-reload && systemctl start page
        nodes:
          app:
            ports: [8080]
            env: {APP_MODE: testing}
        """,
    )
    pytester.makepyfile(
        """
        import time
        import urllib.request

        import pytest

        from pytest_infranode.errors import NodeError

        def test_identity(infra_node, infra_platform):
            assert infra_node.short_name == "app"
            assert infra_node.name.endswith("-debian-12-app")
            assert infra_node.platform is infra_platform
            assert len(infra_node.container_id) == 64
            assert infra_node.address.count(".") == 3

        def test_run_and_env(infra_node):
            assert infra_node.run("echo $APP_MODE").stdout == b"testing\\n"
            assert infra_node.run_argv(["hostname"]).stdout == b"app\\n"

        def test_files_in_and_out(infra_node):
            infra_node.put_files("/opt/in", {"data.bin": (bytes(range(256)), 0o600)})
            assert infra_node.get_file("/opt/in/data.bin") == bytes(range(256))
            assert infra_node.run("stat -c %a /opt/in/data.bin").stdout == b"600\\n"
            with pytest.raises(NodeError):
                infra_node.get_file("/no/such/file")

        def test_logs(infra_node):
            assert isinstance(infra_node.logs(20), str)

        def test_published_port(infra_node):
            address, port = infra_node.port(8080)
            assert infra_node.published_ports == {8080: (address, port)}
            for _ in range(50):
                try:
                    with urllib.request.urlopen(f"http://{address}:{port}/", timeout=2) as page:
                        assert page.read() == b"api-page\\n"
                    return
                except OSError:
                    time.sleep(0.2)
            raise AssertionError("nothing answers on the published port")

        def test_unpublished_port_is_a_clear_error(infra_node):
            with pytest.raises(NodeError, match="port 9999 is not published"):
                infra_node.port(9999)
        """
    )
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(passed=6)
