"""The walking skeleton end to end: real nodes, real converges, nothing left behind."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]

SHELL_INLINE = textwrap.dedent(
    """
    provisioner:
      name: shell
      inline:
        - echo converged > /etc/infranode-marker
    """
)


def test_example_suite_passes_on_debian_12(pytester: pytest.Pytester, infra_run: Run) -> None:
    copy_example(pytester, "nginx")
    run = infra_run("-v")
    run.result.assert_outcomes(passed=11)
    run.result.stdout.fnmatch_lines(["*test_nginx_is_installed[[]debian-12[]] PASSED*"])
    run.result.stdout.no_fnmatch_line("*[[]local[]]*")


def test_example_suite_on_two_platforms(pytester: pytest.Pytester, infra_run: Run) -> None:
    copy_example(pytester, "nginx")
    run = infra_run("-v", "--infra-platform=debian-12,debian-13")
    run.result.assert_outcomes(passed=22)
    run.result.stdout.fnmatch_lines(
        [
            "*test_page_is_served[[]debian-12[]] PASSED*",
            "*test_page_is_served[[]debian-13[]] PASSED*",
        ],
        consecutive=False,
    )


def test_failing_check_fails_only_its_test(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=SHELL_INLINE)
    pytester.makepyfile(
        """
        def test_marker_present(host):
            assert host.file("/etc/infranode-marker").content_string == "converged\\n"

        def test_wrong_expectation(host):
            assert host.file("/etc/infranode-marker").content_string == "something else\\n"

        def test_node_fixture(infra_node):
            assert infra_node.run("cat /etc/infranode-marker").stdout == b"converged\\n"
            assert infra_node.container_id
            assert infra_node.address.count(".") == 3
            assert "systemd" in infra_node.logs(200) or infra_node.logs(200) == ""
        """
    )
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(passed=2, failed=1)
    run.result.stdout.fnmatch_lines(["*FAILED*test_wrong_expectation[[]debian-12[]]*"])


def test_failing_converge_errors_tests_with_the_tail(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - echo first step ok
            - echo the-converge-broke-here >&2; exit 3
        """,
    )
    pytester.makepyfile(
        """
        def test_one(host):
            assert True

        def test_two(host):
            assert True
        """
    )
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(errors=2)
    out = run.result.stdout.str()
    assert "exited with status 3" in out
    assert "the-converge-broke-here" in out
    assert "Traceback" not in out


def test_unknown_platform_fails_before_any_container(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    pytester.makefile(".yaml", infranode=SHELL_INLINE)
    pytester.makepyfile("def test_x(host): pass")
    before = {c.id for c in engine.list_containers([labels.SESSION])}
    run = infra_run("--infra-platform=debain-12")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*unknown platform 'debain-12'*", "*did you mean 'debian-12'*"])
    assert "Traceback" not in run.result.stderr.str()
    after = {c.id for c in engine.list_containers([labels.SESSION])}
    assert after <= before


def test_prepared_image_is_built_once_and_reused(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    token = uuid.uuid4().hex[:8]
    pytester.makeconftest(
        f"""
        import dataclasses
        from pytest_infranode import hookimpl
        from pytest_infranode.platforms import BUILTIN_PLATFORMS

        @hookimpl
        def pytest_infranode_add_platforms():
            base = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")
            return [dataclasses.replace(
                base, name="debian-12-{token}", aliases=(),
                prepare=base.prepare + ("echo {token} > /etc/recipe-token",),
            )]
        """
    )
    pytester.makefile(".yaml", infranode=SHELL_INLINE)
    pytester.makepyfile(
        f"""
        def test_token(host):
            assert host.file("/etc/recipe-token").content_string.strip() == "{token}"
        """
    )
    first = infra_run(f"--infra-platform=debian-12-{token}")
    first.result.assert_outcomes(passed=1)
    first.result.stdout.fnmatch_lines(["*building the prepared image*"])
    second = infra_run(f"--infra-platform=debian-12-{token}")
    second.result.assert_outcomes(passed=1)
    second.result.stdout.fnmatch_lines(["*(cache hit)*"])
    second.result.stdout.no_fnmatch_line("*building the prepared image*")
    images = engine._client.images.list(filters={"label": f"{labels.PLATFORM}=debian-12-{token}"})
    assert len(images) == 1
    engine._client.images.remove(images[0].id, force=True)


def test_platforms_from_ini_and_yaml(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=SHELL_INLINE + "platforms: [debian-13]\n")
    pytester.makepyfile("def test_os(host):\n    assert host.system_info.release.startswith('13')\n")
    run = infra_run("-v")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*test_os[[]debian-13[]] PASSED*"])
    pytester.makeini("[pytest]\ninfra_platforms = debian-12\n")
    pytester.makepyfile("def test_os(host):\n    assert host.system_info.release.startswith('12')\n")
    run = infra_run("-v")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*test_os[[]debian-12[]] PASSED*"])


def test_sandboxed_service_with_user_starts(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - |
              cat > /etc/systemd/system/sandboxed.service <<'UNIT'
              [Service]
              User=nobody
              ExecStart=/bin/sleep infinity
              PrivateTmp=yes
              ProtectSystem=strict
              ProtectHome=yes
              NoNewPrivileges=yes
              UNIT
              systemctl daemon-reload && systemctl start sandboxed
        """,
    )
    pytester.makepyfile(
        """
        def test_running(host):
            assert host.service("sandboxed").is_running
            assert host.check_output("systemctl is-system-running") in ("running", "degraded")
            assert host.process.get(comm="sleep").user == "nobody"
        """
    )
    run = infra_run("--infra-platform=debian-12,debian-13")
    run.result.assert_outcomes(passed=2)


def test_keep_failure_keeps_the_node_and_says_how_to_enter(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    pytester.makefile(".yaml", infranode=SHELL_INLINE)
    pytester.makepyfile("def test_fails(host):\n    assert False\n")
    run = infra_run("--infra-platform=debian-12", "--infra-keep=failure", allow_kept=True)
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*kept infranode-*-debian-12*docker exec -it*"])
    kept = engine.list_containers([f"{labels.SESSION}={run.session_id}"])
    assert len(kept) == 1
    for c in kept:
        engine.remove_container(c.id)


def test_converge_hook_in_conftest_takes_over(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=SHELL_INLINE)
    pytester.makeconftest(
        """
        from pytest_infranode import ConvergeResult, hookimpl

        @hookimpl
        def pytest_infranode_converge(node, provisioner, config, output):
            node.run("echo from-conftest > /etc/infranode-marker")
            return ConvergeResult(0, "custom converge")
        """
    )
    pytester.makepyfile(
        """
        def test_m(host):
            assert host.file("/etc/infranode-marker").content_string == "from-conftest\\n"
        """
    )
    infra_run("--infra-platform=debian-12").result.assert_outcomes(passed=1)
