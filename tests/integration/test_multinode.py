"""Several named nodes per platform: one network, names, order, side effects, ports, markers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import NetworkInfo
from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]


def _networks(engine: Engine, session_id: str) -> list[NetworkInfo]:
    return engine.list_networks([f"{labels.SESSION}={session_id}"])


def test_multinode_example_on_two_platforms(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    copy_example(pytester, "multinode")
    run = infra_run("-v", "--infra-platform=debian-12,debian-13")
    run.result.assert_outcomes(passed=14)
    run.result.stdout.fnmatch_lines(
        [
            "*test_db_service_runs[[]debian-12[]] PASSED*",
            "*test_hostname_is_the_node_name[[]debian-13-db[]] PASSED*",
        ],
        consecutive=False,
    )
    out = run.result.stdout.str()
    # db is converged before web on each platform (web depends on it).
    for platform in ("debian-12", "debian-13"):
        db = out.index(f"converging infranode-{run.session_id}-{platform}-db ")
        web = out.index(f"converging infranode-{run.session_id}-{platform}-web ")
        assert db < web
    # Four nodes in the summary, and the per-platform networks are gone.
    run.result.stdout.fnmatch_lines([f"debian-13*infranode-{run.session_id}-debian-13-web*removed*"])
    assert _networks(engine, run.session_id) == []


def test_failed_dependency_errors_the_dependent_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner: {name: shell, inline: ["true"]}
        nodes:
          web: {depends_on: [db]}
          db:
            provisioner: {name: shell, inline: ["echo db-is-broken; exit 5"]}
        """,
    )
    pytester.makepyfile(
        """
        import pytest

        def test_web(host):
            pass

        @pytest.mark.infra_node("db")
        def test_db(host):
            pass
        """
    )
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(errors=2)
    run.result.stdout.fnmatch_lines(["*node web was not made: it depends on node db, which failed*"])
    run.result.stdout.fnmatch_lines(["*db-is-broken*"])
    assert "Traceback" not in run.result.stdout.str()


def test_failed_side_effect_errors_the_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner: {name: shell, inline: ["true"]}
        nodes:
          app:
            side_effect: ["echo first-ok", "echo side-broke >&2; exit 2"]
        """,
    )
    pytester.makepyfile("def test_app(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(["*side_effect of infranode-*-app failed: `echo side-broke*status 2*"])
    run.result.stdout.fnmatch_lines(["*side-broke*"])


@pytest.mark.parametrize(
    ("yaml_text", "marker", "message"),
    [
        ("nodes: {web: {}, db: {}}\n", '"dbb"', "unknown node 'dbb'"),
        ("nodes: {web: {}, db: {}}\n", 'group="nope"', "*no node is in group 'nope'*"),
        ("", '"db"', "*asks for a named node, but the configuration declares no `nodes:`*"),
        ("nodes: {web: {}}\n", "3", "*takes node names and `group=`*"),
    ],
)
def test_bad_node_marker_is_a_collection_error(
    pytester: pytest.Pytester, infra_run: Run, yaml_text: str, marker: str, message: str
) -> None:
    pytester.makefile(".yaml", infranode='provisioner: {name: shell, inline: ["true"]}\n' + yaml_text)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.infra_node({marker})
        def test_x(host):
            pass
        """
    )
    run = infra_run("--infra-platform=debian-12")
    assert run.result.ret == pytest.ExitCode.INTERRUPTED
    run.result.stdout.fnmatch_lines([message])
    assert "Traceback" not in run.result.stdout.str()
    assert "During handling" not in run.result.stdout.str()


def test_group_marker_runs_on_each_member(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner: {name: shell, inline: ["true"]}
        nodes:
          client: {groups: [linux]}
          server: {groups: [linux, servers]}
          tool: {}
        """,
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.infra_node(group="linux")
        def test_linux(host, infra_node):
            assert host.check_output("hostname") == infra_node.short_name

        @pytest.mark.infra_node(group="servers")
        def test_servers(infra_node):
            assert infra_node.short_name == "server"

        def test_all_reach_each_other(infra_nodes):
            assert list(infra_nodes) == ["client", "server", "tool"]
            for node in infra_nodes.values():
                for other in infra_nodes:
                    assert node.run(f"getent hosts {other}").exit_status == 0
        """
    )
    run = infra_run("-v", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=4)
    for line in (
        "*test_linux[[]debian-12-client[]] PASSED*",
        "*test_linux[[]debian-12-server[]] PASSED*",
        "*test_servers[[]debian-12[]] PASSED*",
    ):
        run.result.stdout.fnmatch_lines([line])


def test_networks_of_expired_sessions_are_swept(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    host = os.uname().nodename
    made = {}
    for sid, owner in (
        ("deadbeef0000000a", f"{host}:{finished.pid}"),
        ("deadbeef0000000b", f"{host}:{os.getpid()}"),
    ):
        net_labels = {
            labels.SESSION: sid,
            labels.PLATFORM: "debian-12",
            labels.NODE: f"infranode-{sid}-debian-12",
            labels.PID: owner,
            labels.CREATED: str(int(time.time())),
        }
        made[sid] = engine.create_network(f"infranode-{sid}-debian-12", net_labels)
    try:
        pytester.makefile(".yaml", infranode='provisioner: {name: shell, inline: ["true"]}\n')
        pytester.makepyfile("def test_a(host):\n    pass\n")
        infra_run("--infra-platform=debian-12").result.assert_outcomes(passed=1)
        assert _networks(engine, "deadbeef0000000a") == [], "the dead session's network was left"
        assert len(_networks(engine, "deadbeef0000000b")) == 1, "a live session's network was removed"
    finally:
        for network_id in made.values():
            engine.remove_network(network_id)
