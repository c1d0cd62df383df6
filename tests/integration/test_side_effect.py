"""The ansible provisioner's ``side_effect:`` playbook (Molecule's side_effect.yml), for real on
debian-12: run after the converge and its idempotence check, before the specs, over the nodes
converged together; a failing one fails the node with the playbook's name and removes it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

UNIT = """\
[Unit]
Description=an idle service the side effect stops
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""


def _write(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_side_effect_runs_after_the_idempotence_check_and_before_the_specs(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    _write(
        pytester,
        {
            "infranode.yaml": """\
                platforms: [debian-12]
                provisioner:
                  name: ansible
                  playbook: site.yml
                  side_effect: side_effect.yml
                  group_vars: {all: {marker: from-group-vars}}
                """,
            "idle.service": UNIT,
            "site.yml": """\
                - hosts: all
                  tasks:
                    - ansible.builtin.copy:
                        {src: idle.service, dest: /etc/systemd/system/idle.service, mode: "0644"}
                    - ansible.builtin.systemd_service:
                        {name: idle, state: started, enabled: true, daemon_reload: true}
                """,
            "side_effect.yml": """\
                - hosts: all
                  tasks:
                    - ansible.builtin.systemd_service: {name: idle, state: stopped}
                    - ansible.builtin.copy: {content: "{{ marker }}", dest: /root/side-effect}
                """,
            "test_idle.py": """\
                def test_the_side_effect_stopped_the_service(host):
                    assert not host.service("idle").is_running
                    assert host.service("idle").is_enabled

                def test_the_side_effect_had_the_inventory_vars(host):
                    assert host.file("/root/side-effect").content_string == "from-group-vars"
                """,
        },
    )
    run = infra_run("--infra-idempotence", "-s", subprocess=True)
    run.result.assert_outcomes(passed=2)
    out = run.result.stdout.str()
    # had the side effect run before the idempotence check, the second converge would have
    # started the service again and failed the node as not idempotent
    run.result.stdout.fnmatch_lines(
        [
            "*converging * again to check idempotence*",
            "*debian-12: running the side effect side_effect.yml on infranode-*-debian-12*",
            "  debian-12 | --- infranode: side effect (side_effect.yml) ---",
            "  debian-12 | $ *ansible-playbook *inventory.yml */side_effect.yml",
        ]
    )
    assert out.count("--- infranode: side effect (side_effect.yml) ---") == 1


def test_a_side_effect_over_nodes_converged_together_sees_them_all(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    _write(
        pytester,
        {
            "infranode.yaml": """\
                platforms: [debian-12]
                nodes: {alpha: {}, beta: {}}
                provisioner:
                  name: ansible
                  playbook: site.yml
                  side_effect: side_effect.yml
                """,
            "site.yml": """\
                - hosts: all
                  gather_facts: false
                  tasks:
                    - ansible.builtin.copy: {content: "{{ inventory_hostname }}", dest: /root/me}
                """,
            "side_effect.yml": """\
                - hosts: all
                  gather_facts: false
                  tasks:
                    - ansible.builtin.copy:
                        content: "{{ groups['all'] | join(',') }}"
                        dest: /root/peers
                """,
            "test_peers.py": """\
                import pytest

                @pytest.mark.infra_node("alpha", "beta")
                def test_each_node_was_in_the_one_side_effect_run(host):
                    assert host.file("/root/peers").content_string == "alpha,beta"
                """,
        },
    )
    run = infra_run(subprocess=True)
    run.result.assert_outcomes(passed=2)
    out = run.result.stdout.str()
    assert out.count("running the side effect side_effect.yml on ") == 1, out  # one run for both
    run.result.stdout.fnmatch_lines(["*running the side effect side_effect.yml on *-alpha, *-beta*"])


def test_a_failing_side_effect_fails_the_node_naming_the_playbook(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    _write(
        pytester,
        {
            "infranode.yaml": """\
                platforms: [debian-12]
                provisioner:
                  name: ansible
                  playbook: site.yml
                  side_effect: side_effect.yml
                """,
            "site.yml": """\
                - hosts: all
                  gather_facts: false
                  tasks:
                    - ansible.builtin.ping:
                """,
            "side_effect.yml": """\
                - hosts: all
                  gather_facts: false
                  tasks:
                    - name: Break something on purpose
                      ansible.builtin.command: /bin/false
                """,
            "test_x.py": """\
                def test_never_runs(host):
                    assert host.exists("sh")
                """,
        },
    )
    run = infra_run(subprocess=True)  # infra_run also asserts that no container is left
    run.result.assert_outcomes(errors=1)
    out = run.result.stdout.str()
    run.result.stdout.fnmatch_lines(
        [
            "*the side effect of infranode-*-debian-12 failed: side_effect.yml (ansible provisioner) "
            "exited with status 2*",
            "*fix side_effect.yml (`side_effect` in *infranode.yaml*",
        ]
    )
    assert "Break something on purpose" in out  # the tail shows the playbook's own words
    assert "Traceback" not in out
