"""The MOLECULE_* variables of a session configured from a Molecule scenario. No daemon."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_infranode.cli import main
from pytest_infranode.errors import SettingsError
from pytest_infranode.molecule.environment import instance_config_text
from pytest_infranode.molecule.environment import platform_variables
from pytest_infranode.molecule.environment import scenario_of
from pytest_infranode.molecule.environment import session_variables
from pytest_infranode.molecule.environment import tools_path
from pytest_infranode.molecule.environment import verifier_env

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"


def _scenario(tmp_path: Path) -> Path:
    scenario = tmp_path / "roles" / "web" / "molecule" / "default"
    scenario.mkdir(parents=True)
    (scenario / "molecule.yml").write_text("driver: {name: docker}\n")
    (scenario / "infranode.yaml").write_text("platforms: [debian-12]\n")
    return scenario


def test_a_config_next_to_molecule_yml_came_from_its_scenario(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    found = scenario_of(scenario / "infranode.yaml")
    assert found is not None
    assert (found.role_dir, found.directory, found.name) == (tmp_path / "roles" / "web", scenario, "default")
    (tmp_path / "infranode.yaml").write_text("platforms: [debian-12]\n")
    assert scenario_of(tmp_path / "infranode.yaml") is None
    assert scenario_of(None) is None


def test_the_variables_molecule_sets_for_its_verifier(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    found = scenario_of(scenario / "infranode.yaml")
    assert found is not None
    inv, eph = tmp_path / "logs" / "s.inventory.yml", tmp_path / "logs" / "s.molecule"
    variables = session_variables(found, inventory=inv, ephemeral=eph)
    role = tmp_path / "roles" / "web"
    assert variables == {
        "MOLECULE_PROJECT_DIRECTORY": str(role),
        "MOLECULE_SCENARIO_DIRECTORY": str(scenario),
        "MOLECULE_SCENARIO_NAME": "default",
        "MOLECULE_FILE": str(scenario / "molecule.yml"),
        "MOLECULE_DRIVER_NAME": "docker",
        "MOLECULE_PROVISIONER_NAME": "ansible",
        "MOLECULE_ENV_FILE": str(role / ".env.yml"),
        "MOLECULE_EPHEMERAL_DIRECTORY": str(eph),
        "MOLECULE_INVENTORY_FILE": str(inv),
        "MOLECULE_INSTANCE_CONFIG": str(eph / "instance_config.yml"),
        "MOLECULE_STATE_FILE": str(eph / "state.yml"),
        "MOLECULE_DEBUG": "False",
        "MOLECULE_VERIFIER_NAME": "testinfra",
        "MOLECULE_VERIFIER_TEST_DIRECTORY": str(scenario / "tests"),
    }


def test_the_ansible_tools_next_to_python_go_on_path_when_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    assert tools_path({"PATH": "/usr/bin"}, bin_dir) is None  # no tool there
    (bin_dir / "ansible-inventory").write_text("")
    assert tools_path({"PATH": "/usr/bin:/bin"}, bin_dir) == os.pathsep.join(
        [str(bin_dir), "/usr/bin", "/bin"]
    )
    assert tools_path({"PATH": f"/usr/bin:{bin_dir}"}, bin_dir) is None  # already there


def test_instance_config_names_each_instance_and_its_container() -> None:
    assert instance_config_text({"server-1": "infranode-s-debian-12-server-1"}) == (
        "- instance: server-1\n  container: infranode-s-debian-12-server-1\n"
    )


def test_the_cluster_specs_are_collected_on_the_hosts_they_choose(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No daemon: collection only. test_servers.py asks testinfra's AnsibleRunner for the
    servers of MOLECULE_INVENTORY_FILE (ansible-inventory, not on PATH here), test_clients.py
    names ansible://clients: each spec is collected once per node it chose."""
    role = pytester.path / "cluster_hosts"
    shutil.copytree(FIXTURES / "cluster_hosts", role)
    monkeypatch.chdir(pytester.path)
    assert main(["import", "molecule", "--role", str(role)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = pytester.runpytest_subprocess(
        "--rootdir=cluster_hosts/molecule/default",
        "cluster_hosts/molecule/default/tests",
        "--collect-only",
        "-q",
    )
    ids = [line.split("::", 1)[1] for line in result.stdout.lines if "::" in line]
    assert sorted(ids) == sorted(
        [
            "test_client_sees_the_servers[debian-12-client-1]",
            "test_client_sees_the_servers[debian-12-client-2]",
            "test_client_resolves_its_own_name[debian-12-client-1]",
            "test_client_resolves_its_own_name[debian-12-client-2]",
            "test_client_group_vars_from_the_link[debian-12-client-1]",
            "test_client_group_vars_from_the_link[debian-12-client-2]",
            "test_client_has_its_molecule_hostname[debian-12-client-1]",
            "test_client_has_its_molecule_hostname[debian-12-client-2]",
            "test_server_knows_every_client[debian-12]",
            "test_server_port_comes_from_host_vars[debian-12]",
            "test_server_port_is_the_one_the_verifier_env_gives[debian-12]",
        ]
    )


def test_verifier_env_is_read_from_molecule_yml_as_molecule_reads_it(tmp_path: Path) -> None:
    """Its ``${VAR}`` from the environment (with the session's MOLECULE_* variables) and the
    role's .env.yml, when the session starts."""
    scenario = _scenario(tmp_path)
    (scenario / "molecule.yml").write_text(
        "driver: {name: docker}\nplatforms: [{name: i, image: debian:12}]\n"
        "verifier:\n  name: testinfra\n  env:\n    SPEC_MODE: ${SPEC_MODE:-strict}\n"
        "    INVENTORY_COPY: ${MOLECULE_INVENTORY_FILE}\n    FROM_ENV_YML: ${ROLE_COLOUR}\n"
    )
    (tmp_path / "roles" / "web" / ".env.yml").write_text("ROLE_COLOUR: blue\n")
    (scenario / "converge.yml").write_text("- hosts: all\n")
    found = scenario_of(scenario / "infranode.yaml")
    assert found is not None
    environ = {"MOLECULE_INVENTORY_FILE": "/logs/s.inventory.yml"}
    assert verifier_env(found, environ) == {
        "SPEC_MODE": "strict",
        "INVENTORY_COPY": "/logs/s.inventory.yml",
        "FROM_ENV_YML": "blue",
    }
    assert verifier_env(found, {**environ, "SPEC_MODE": "loose"})["SPEC_MODE"] == "loose"
    (scenario / "molecule.yml").write_text(
        "driver: {name: docker}\nplatforms: [{name: i, image: debian:12}]\n"
        "verifier: {name: testinfra, env: [A]}\n"
    )
    with pytest.raises(SettingsError) as err:
        verifier_env(found, environ)
    assert "molecule.yml:3" in str(err.value)


def test_each_platforms_tests_see_its_own_inventory_and_the_verifier_env_that_names_it(
    tmp_path: Path,
) -> None:
    """Molecule has one inventory per run: re-targeted to two platforms, the second platform's
    tests see its inventory, and verifier.env values made from it follow; others stay."""
    scenario = _scenario(tmp_path)
    (scenario / "molecule.yml").write_text(
        "driver: {name: docker}\nplatforms: [{name: i, image: debian:12}]\n"
        "verifier:\n  name: testinfra\n  env:\n    INVENTORY_COPY: ${MOLECULE_INVENTORY_FILE}\n"
        "    SPEC_MODE: strict\n"
    )
    (scenario / "converge.yml").write_text("- hosts: all\n")
    found = scenario_of(scenario / "infranode.yaml")
    assert found is not None
    first = {"MOLECULE_INVENTORY_FILE": "/logs/a.inventory.yml", "INVENTORY_COPY": "/logs/a.inventory.yml"}
    session = {**first, "SPEC_MODE": "strict", "MOLECULE_SCENARIO_NAME": "default"}
    assert platform_variables(found, session, Path("/logs/a.inventory.yml"), {}) == {}  # the first's
    assert platform_variables(found, session, Path("/logs/b.inventory.yml"), {}) == {
        "MOLECULE_INVENTORY_FILE": "/logs/b.inventory.yml",
        "INVENTORY_COPY": "/logs/b.inventory.yml",
    }
