"""One Ansible run over a platform's nodes, and the specs' own host selection, converged for real
on debian-12: the cluster_hosts Molecule scenario (three nodes in two groups, a playbook using
delegate_to, hostvars and group loops; specs choosing their hosts with testinfra_hosts, one of
them through MOLECULE_INVENTORY_FILE and testinfra's AnsibleRunner, and host.ansible), and a
multi-node suite without Molecule whose depends_on levels are runs of their own."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import InfraRun
from tests.integration.conftest import import_molecule

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"

Run = Callable[..., InfraRun]


def test_the_cluster_scenario_converges_in_one_run_and_its_specs_choose_their_hosts(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    role = pytester.path / "cluster_hosts"
    shutil.copytree(FIXTURES / "cluster_hosts", role)
    # provisioner.inventory.links names ../../inventory/group_vars, outside the scenario's
    # folder (the project): linked next to the session inventory, which the import may allow
    _, command = import_molecule(pytester, capsys, role, "--allow-outside-project")
    run = infra_run(*command[1:], "-v", subprocess=True)
    out = run.result.stdout.str()
    # test_clients.py: 4 specs on each client; test_servers.py: 3 on the one server
    run.result.assert_outcomes(passed=11)
    passed = sorted(
        line.split("::", 1)[1].split(" PASSED")[0] for line in out.splitlines() if " PASSED" in line
    )
    assert passed == [  # pytest runs them grouped by node
        "test_client_group_vars_from_the_link[debian-12-client-1]",
        "test_client_group_vars_from_the_link[debian-12-client-2]",
        "test_client_has_its_molecule_hostname[debian-12-client-1]",
        "test_client_has_its_molecule_hostname[debian-12-client-2]",
        "test_client_resolves_its_own_name[debian-12-client-1]",
        "test_client_resolves_its_own_name[debian-12-client-2]",
        "test_client_sees_the_servers[debian-12-client-1]",
        "test_client_sees_the_servers[debian-12-client-2]",
        "test_server_knows_every_client[debian-12]",
        "test_server_port_comes_from_host_vars[debian-12]",
        "test_server_port_is_the_one_the_verifier_env_gives[debian-12]",  # verifier.env
    ]
    assert "debian-12-server-1]" not in out  # no spec ran on a node its module did not choose
    # one run of ansible-playbook over the three nodes, then the idempotence run over them
    prefix = f"infranode-{run.session_id}-debian-12"
    assert out.count("converging nodes server-1, client-1, client-2 in one ansible run") == 1
    assert out.count("converging nodes server-1, client-1, client-2 again to check idempotence") == 1
    run.result.stdout.fnmatch_lines(["*server-1 * ok=* changed=0 *"], consecutive=False)
    inventory = next(
        Path(line.split("over the inventory ", 1)[1].split(" (log:", 1)[0])
        for line in out.splitlines()
        if "in one ansible run over the inventory" in line
    )
    assert inventory.name == f"{prefix}.inventory.yml"
    assert inventory.is_file()  # it stays for the session (and after, in the log folder)
    assert (inventory.parent / "group_vars" / "all.yml").is_file()  # the link, next to it
    for name in ("server-1", "client-1", "client-2"):
        assert f"{prefix}-{name} " in out  # each node in the summary table


def test_a_scenario_of_different_images_is_re_targeted_with_its_names_groups_and_vars(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cluster scenario with its server on another image (the different-images layout):
    ``--infra-platform=debian-12`` makes every node of the scenario on debian-12, converged in
    one run, and the specs pass as they do in the one-image layout."""
    role = pytester.path / "cluster_hosts"
    shutil.copytree(FIXTURES / "cluster_hosts", role)
    scenario = role / "molecule" / "default"
    molecule_yml = scenario / "molecule.yml"
    molecule_yml.write_text(molecule_yml.read_text().replace("${CLUSTER_IMAGE:-debian:12}", "debian:13", 1))
    _, command = import_molecule(pytester, capsys, role, "--allow-outside-project")
    written = (scenario / "infranode.yaml").read_text()
    assert "platform: server-1" in written  # each node on its own image
    assert "platform: client-1" in written
    run = infra_run(*command[1:], "--infra-platform=debian-12", "-v", subprocess=True)
    out = run.result.stdout.str()
    run.result.assert_outcomes(passed=11)
    for spec in (
        "test_client_group_vars_from_the_link[debian-12-client-1]",  # group_vars
        "test_client_has_its_molecule_hostname[debian-12-client-2]",  # hostname
        "test_client_sees_the_servers[debian-12-client-2]",  # groups, hostvars of other hosts
        "test_server_port_comes_from_host_vars[debian-12]",  # host_vars
    ):
        assert f"{spec} PASSED" in out
    assert out.count("converging nodes server-1, client-1, client-2 in one ansible run") == 1
    for name in ("server-1", "client-1", "client-2"):
        assert f"infranode-{run.session_id}-debian-12-{name} " in out  # the summary: all on debian-12
        assert f"infranode-{run.session_id}-{name}-" not in out  # none on a platform of the scenario's own


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_a_suite_without_molecule_runs_depends_on_levels_and_selects_hosts(
    pytester: pytest.Pytester, infra_run: Run, xdist: list[str]
) -> None:
    pytester.makefile(
        ".yml",
        site=textwrap.dedent(
            """\
            - hosts: all
              gather_facts: false
              tasks:
                - name: Write the peers
                  ansible.builtin.copy:
                    dest: /etc/peers
                    content: "{{ groups['web'] | join(',') }} db={{ hostvars['db']['db_port'] }}\\n"
                    mode: "0644"
                - name: Register each web node on the db
                  ansible.builtin.lineinfile:
                    path: /etc/web-nodes
                    line: "{{ inventory_hostname }}"
                    create: true
                    mode: "0644"
                  delegate_to: db
                  throttle: 1
                  when: "'web' in group_names"
            """
        ),
    )
    pytester.makefile(
        ".yaml",
        infranode=textwrap.dedent(
            """\
            platforms: [debian-12]
            provisioner:
              name: ansible
              playbook: site.yml
              host_vars: {db: {db_port: 5432}}
            nodes:
              db: {}
              web-1: {groups: [web], depends_on: [db]}
              web-2: {groups: [web], depends_on: [db]}
            """
        ),
    )
    pytester.makepyfile(
        test_web=textwrap.dedent(
            """\
            testinfra_hosts = ["ansible://web"]

            def test_peers(host):
                assert host.file("/etc/peers").content_string == "web-1,web-2 db=5432\\n"

            def test_inventory_name(host):
                assert host.ansible.get_variables()["inventory_hostname"] == host.check_output("hostname")
            """
        ),
        test_db=textwrap.dedent(
            """\
            testinfra_hosts = ["db"]

            def test_web_nodes_registered(host):
                assert host.file("/etc/web-nodes").content_string.split() == ["web-1", "web-2"]

            def test_module_runs_on_the_node(host):
                assert host.ansible("command", "hostname", check=False)["stdout"] == "db"
            """
        ),
    )
    run = infra_run("-v", *xdist, subprocess=True)
    run.result.assert_outcomes(passed=6)
    if xdist:  # the first worker made the three nodes in one run; the other attached to them
        return
    out = run.result.stdout.str()
    assert out.count("converging nodes db, web-1, web-2 in one ansible run") == 1
    # db's level first, then the web nodes', each a run limited to it
    db = out.index("--limit db ")
    web = out.index("--limit web-1,web-2 ")
    assert db < web
