"""Built-in and third-party provisioners converging real debian-12 and debian-13 nodes.

Every example runs on every platform the project can start here (EXAMPLE_PLATFORMS), both in one
session: side by side, as a user's CI run over both would."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.provisioners import _common
from tests.integration.conftest import EXAMPLE_PLATFORMS
from tests.integration.conftest import OWNER
from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]
BOTH = "--infra-platform=" + ",".join(EXAMPLE_PLATFORMS)


def each_platform(run: InfraRun, lines: Callable[[str], list[str]]) -> None:
    """``lines(platform)`` in order among the run's output, for each platform (the two
    platforms' converge lines interleave; each one's own keep their order)."""
    for platform in EXAMPLE_PLATFORMS:
        run.result.stdout.fnmatch_lines(lines(platform))


def test_ansible_example_converges_idempotently_through_the_docker_api(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "ansible")
    run = infra_run("-v", "--infra-idempotence", BOTH)
    run.result.assert_outcomes(passed=10 * len(EXAMPLE_PLATFORMS))
    run.result.stdout.fnmatch_lines(["*provisioner ansible*"])
    each_platform(
        run,
        lambda p: [
            # -v shows the converge output live, line by line, prefixed with the platform
            f"  {p} | TASK [[]web : Install nginx and curl[]] **",
            f"  {p} | changed: [[]{p}[]]",
            f"  {p} | --- infranode: second converge (idempotence check) ---",
            f"  {p} | * --diff *",
            f"  {p} | {p} * changed=0 *",
            f"*test_header_uses_host_vars[[]{p}[]] PASSED*",
        ],
    )


def test_pyinfra_example_converges_idempotently_through_the_docker_api(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "pyinfra")
    run = infra_run("-v", "--infra-idempotence", BOTH)
    run.result.assert_outcomes(passed=9 * len(EXAMPLE_PLATFORMS))
    each_platform(
        run,
        lambda p: [
            f"  {p} | $ *pyinfra -y --no-wait --data site_name=infranode-demo @infranode/* *deploy.py",
            f"  {p} |     Grand total  * 7 *",
            f"  {p} |     Grand total  * -  * -  * 7 *",
            f"*test_custom_header_is_sent[[]{p}[]] PASSED*",
        ],
    )


NOT_IDEMPOTENT = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Stamp a random value
      ansible.builtin.copy:
        dest: /etc/stamp
        content: "{{ 999999999 | random }}\\n"
    - name: Stable file
      ansible.builtin.copy:
        dest: /etc/stable
        content: "same\\n"
"""


def test_non_idempotent_playbook_fails_with_the_changed_task_and_its_diff(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    pytester.makefile(".yaml", infranode="provisioner: {name: ansible, playbook: site.yml}\n")
    pytester.makefile(".yml", site=NOT_IDEMPOTENT)
    pytester.makepyfile("def test_stamped(host):\n    assert host.file('/etc/stamp').exists\n")
    run = infra_run("--infra-platform=debian-12", "--infra-idempotence")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        [
            "*is not idempotent: the second converge with ansible changed 1 thing(s)*",
            "--- what the second converge changed ---",
            "changed: Stamp a random value (ansible.builtin.copy)",
            "--- before: /etc/stamp",
            "+++ after: /etc/stamp",
        ]
    )
    run.result.stdout.no_fnmatch_line("changed: Stable file*")


def test_shell_cannot_tell_so_idempotence_warns_and_passes(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode="provisioner: {name: shell, inline: [echo ran >> /etc/runs]}\n")
    # This project runs its tests with warnings as errors; the inner session shows them instead.
    pytester.makeini("[pytest]\nfilterwarnings = default::pytest_infranode.errors.InfranodeWarning\n")
    pytester.makepyfile(
        """
        def test_converged_twice(host):
            assert host.file("/etc/runs").content_string == "ran\\nran\\n"
        """
    )
    run = infra_run("--infra-platform=debian-12", "--infra-idempotence")
    run.result.assert_outcomes(passed=1, warnings=1)
    run.result.stdout.fnmatch_lines(
        ["*the shell provisioner cannot tell whether a converge changed anything*"]
    )


def test_missing_runner_tool_stops_the_session_before_any_node(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_example(pytester, "ansible")
    monkeypatch.setattr(_common, "find_tool", lambda tool: None)
    run = infra_run()
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(
        [
            "*the ansible provisioner needs `ansible-playbook` on the runner*",
            "*where: runner: not in *",
            "*fix: *pip install 'pytest-infranode?ansible?'*",
        ]
    )
    assert engine.list_containers([f"{labels.PID}={OWNER}"]) == []


def test_puppet_example_installs_the_agent_and_converges_idempotently(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "puppet")
    run = infra_run("-v", "--infra-idempotence", BOTH)
    run.result.assert_outcomes(passed=9 * len(EXAMPLE_PLATFORMS))
    each_platform(
        run,
        lambda p: [
            f"  {p} | *apt-get install -y -q puppet-agent*",
            f"  {p} | Notice: /Stage[[]main[]]/Web/Package[[]nginx[]]/ensure: created",
            f"  {p} | --- infranode: second converge (idempotence check) ---",
            f"  {p} | $ *puppet apply --detailed-exitcodes * --show_diff *",
            f"*test_custom_header_is_sent[[]{p}[]] PASSED*",
        ],
    )


def test_salt_example_pip_installs_salt_and_converges_idempotently(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    # Debian 12 and 13 ship no Salt: `install: pip` puts it in a virtual environment from PyPI,
    # on Python 3.11 and 3.13 (Salt before 3007.14 finds no top file on 3.13).
    copy_example(pytester, "salt")
    run = infra_run("-v", "--infra-idempotence", BOTH)
    run.result.assert_outcomes(passed=9 * len(EXAMPLE_PLATFORMS))
    each_platform(
        run,
        lambda p: [
            f"  {p} | Successfully installed salt-3007.14",
            f"  {p} | $ *salt-call --local*",
            f"  {p} | --- infranode: second converge (idempotence check) ---",
            f"*test_custom_header_is_sent[[]{p}[]] PASSED*",
        ],
    )


@pytest.mark.slow
def test_a_failing_salt_state_is_named_in_salts_own_words(pytester: pytest.Pytester, infra_run: Run) -> None:
    copy_example(pytester, "salt")
    (pytester.path / "salt" / "top.sls").write_text("base:\n  '*':\n    - web\n    - nosuch\n")
    pytester.makepyfile(test_web="def test_x(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-13")
    run.result.assert_outcomes(errors=1)
    # Salt's answer is the reason, in the error's first line, whatever pip printed before it.
    run.result.stdout.fnmatch_lines(
        [
            "converge of infranode-*-debian-13 failed: the salt provisioner exited with status *: "
            "Salt said: No matching sls found for 'nosuch' in env 'base'*",
        ]
    )


def test_salt_without_pip_on_debian_12_fails_naming_what_is_missing(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "salt")
    config = pytester.path / "infranode.yaml"
    config.write_text(config.read_text().replace("install: pip", "install: packages"))
    run = infra_run()
    run.result.assert_outcomes(errors=9)
    run.result.stdout.fnmatch_lines(
        [
            "*the salt provisioner needs `salt-call` in the node, and it is not there; the platform's "
            "packages do not provide it (tried: *apt-get install -y -q salt-minion*",
            "*fix:   use a platform whose image or packages have Salt*",
        ]
    )


def test_chef_without_a_client_fails_naming_what_is_missing(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    # No Chef/Cinc client in Debian and the vendor's omnitruck is not reachable from here.
    pytester.mkdir("cookbooks")
    pytester.makefile(
        ".yaml",
        infranode="provisioner: {name: chef, cookbooks: cookbooks, run_list: ['recipe[web]']}\n",
    )
    pytester.makepyfile("def test_x(host):\n    pass\n")
    run = infra_run("--infra-platform=debian-12")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        [
            "*the chef provisioner needs `cinc-client` in the node, and it is not there (install: never)*",
            "*fix:   use a platform image with the cinc client, or `install: omnitruck` where "
            "omnitruck.cinc.sh is reachable*",
        ]
    )


def test_conftest_provisioner_example_is_found_and_idempotent(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "custom-provisioner")
    run = infra_run("-v", "--infra-idempotence", BOTH)
    run.result.assert_outcomes(passed=2 * len(EXAMPLE_PLATFORMS))
    run.result.stdout.fnmatch_lines(["*provisioner motd*"])
    each_platform(run, lambda p: [f"  {p} | motd written", f"  {p} | motd already set"])
