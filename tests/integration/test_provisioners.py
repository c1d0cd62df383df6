"""Built-in and third-party provisioners converging real debian-12 nodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.provisioners import _common
from tests.integration.conftest import OWNER
from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]


def test_ansible_example_converges_idempotently_through_the_docker_api(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "ansible")
    run = infra_run("-v", "--infra-idempotence")
    run.result.assert_outcomes(passed=10)
    run.result.stdout.fnmatch_lines(
        [
            "*provisioner ansible*",
            # -v shows the converge output live, line by line, prefixed with the platform
            "  debian-12 | TASK [[]web : Install nginx and curl[]] **",
            "  debian-12 | changed: [[]debian-12[]]",
            "*converging * again to check idempotence*",
            "  debian-12 | --- infranode: second converge (idempotence check) ---",
            "  debian-12 | * --diff *",
            "  debian-12 | debian-12 * changed=0 *",
            "*test_header_uses_host_vars[[]debian-12[]] PASSED*",
        ]
    )


def test_pyinfra_example_converges_idempotently_through_the_docker_api(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    copy_example(pytester, "pyinfra")
    run = infra_run("-v", "--infra-idempotence")
    run.result.assert_outcomes(passed=9)
    run.result.stdout.fnmatch_lines(
        [
            "  debian-12 | $ *pyinfra -y --no-wait --data site_name=infranode-demo @infranode/* *deploy.py",
            "  debian-12 |     Grand total  * 7 *",
            "  debian-12 |     Grand total  * -  * -  * 7 *",
            "*test_custom_header_is_sent[[]debian-12[]] PASSED*",
        ]
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
    run = infra_run("-v", "--infra-idempotence")
    run.result.assert_outcomes(passed=9)
    run.result.stdout.fnmatch_lines(
        [
            "  debian-12 | *apt-get install -y -q puppet-agent*",
            "  debian-12 | Notice: /Stage[[]main[]]/Web/Package[[]nginx[]]/ensure: created",
            "  debian-12 | --- infranode: second converge (idempotence check) ---",
            "  debian-12 | $ *puppet apply --detailed-exitcodes * --show_diff *",
            "*test_custom_header_is_sent[[]debian-12[]] PASSED*",
        ]
    )


def test_salt_example_pip_installs_salt_and_converges_idempotently(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    # Debian 12 ships no Salt: `install: pip` puts it in a virtual environment from PyPI.
    copy_example(pytester, "salt")
    run = infra_run("-v", "--infra-idempotence")
    run.result.assert_outcomes(passed=9)
    run.result.stdout.fnmatch_lines(
        [
            "*salt-call --local*",
            "  debian-12 | --- infranode: second converge (idempotence check) ---",
            "*test_custom_header_is_sent[[]debian-12[]] PASSED*",
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
    run = infra_run("-v", "--infra-idempotence")
    run.result.assert_outcomes(passed=2)
    run.result.stdout.fnmatch_lines(
        ["*provisioner motd*", "  debian-12 | motd written", "  debian-12 | motd already set"]
    )
