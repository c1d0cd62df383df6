"""Reading Molecule scenarios: the fixture roles, interpolation, base config, and every mistake
named with its file and line. No daemon."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.molecule.interpolation import interpolate
from pytest_infranode.molecule.model import DEFAULT_TEST_SEQUENCE
from pytest_infranode.molecule.model import Network
from pytest_infranode.molecule.reader import find_role_dir
from pytest_infranode.molecule.reader import merge
from pytest_infranode.molecule.reader import read_role
from pytest_infranode.molecule.reader import read_scenario
from pytest_infranode.molecule.reader import scenario_names
from pytest_infranode.molecule.scan import role_references

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"
HELLO = FIXTURES / "hello_service"
CLUSTER = FIXTURES / "cluster_hosts"


def role(tmp_path: Path, molecule_yml: str, *, scenario: str = "default", converge: bool = True) -> Path:
    """A minimal role in tmp_path with one scenario."""
    folder = tmp_path / "myrole" / "molecule" / scenario
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "molecule.yml").write_text(textwrap.dedent(molecule_yml).lstrip("\n"), encoding="utf-8")
    if converge:
        (folder / "converge.yml").write_text("- hosts: all\n  roles: [myrole]\n", encoding="utf-8")
    (tmp_path / "myrole" / "tasks").mkdir(exist_ok=True)
    (tmp_path / "myrole" / "tasks" / "main.yml").write_text("[]\n", encoding="utf-8")
    return tmp_path / "myrole"


MINIMAL = """
driver: {name: docker}
platforms:
  - name: instance
    image: debian:12
"""


# --- the fixture roles --------------------------------------------------------------------------


def test_the_systemd_scenario_reads_every_platform_key() -> None:
    s = read_scenario(HELLO, environ={})
    assert s.name == "default"
    assert s.driver == "docker"
    assert s.directory == HELLO / "molecule" / "default"
    [p] = s.platforms
    assert (p.name, p.image, p.pre_build_image, p.dockerfile) == ("instance", "debian:12", True, "")
    assert p.command == "/lib/systemd/systemd"
    assert p.privileged is True
    assert p.cgroupns == "host"
    assert p.volumes == ("/sys/fs/cgroup:/sys/fs/cgroup:rw",)
    assert p.tmpfs == ("/run", "/tmp")
    assert p.env == {"HELLO_ENV": "from-molecule"}
    assert p.key == "platforms.0"
    assert s.at("platforms.0.privileged") == f"{s.file}:12"
    assert s.provisioner.config_options == {"defaults": {"gathering": "smart", "stdout_callback": "default"}}
    assert s.provisioner.inventory.host_vars == {"instance": {"hello_message": "hello from the instance"}}
    assert s.provisioner.playbooks.converge == s.directory / "converge.yml"
    assert s.provisioner.playbooks.named() == {"converge": s.directory / "converge.yml"}
    assert s.verifier.name == "testinfra"
    assert s.verifier.options == {"v": True}
    assert s.verifier.tests == (s.directory / "tests" / "test_default.py",)
    assert s.test_sequence == DEFAULT_TEST_SEQUENCE
    assert s.dependency.name == "galaxy"
    assert s.dependency.requirements == ()


def test_the_role_layout() -> None:
    r = read_role(HELLO)
    assert r.name == "hello_service"
    assert r.fqrn == "infranode_tests.hello_service"  # namespace + role_name of meta/main.yml
    assert r.is_role
    assert r.scenarios == ("default", "lifecycle")
    assert read_role(CLUSTER).fqrn == "infranode_tests.cluster_hosts"  # the author, without namespace
    assert scenario_names(FIXTURES) == ()


def test_the_lifecycle_scenario_has_every_playbook_and_its_own_sequence() -> None:
    s = read_scenario(HELLO, "lifecycle", environ={})
    books = s.provisioner.playbooks
    assert books.prepare == s.directory / "prepare.yml"
    assert books.side_effect == s.directory / "side_effect.yml"
    assert books.verify == s.directory / "verify.yml"
    assert books.cleanup is None
    assert s.verifier.name == "ansible"
    assert s.verifier.tests == ()
    assert s.test_sequence == (
        "destroy",
        "create",
        "prepare",
        "converge",
        "idempotence",
        "side_effect",
        "verify",
        "destroy",
    )
    assert s.provisioner.env == {"HELLO_SCENARIO": "lifecycle"}  # ${MOLECULE_SCENARIO_NAME}
    assert s.provisioner.options == {"diff": True}
    assert s.provisioner.inventory.group_vars == {"web": {"hello_port": 8081}}
    assert s.platforms[0].image == "docker.io/library/debian:bookworm"
    [variable] = s.variables
    assert (variable.name, variable.kind, variable.value) == (
        "MOLECULE_SCENARIO_NAME",
        "molecule",
        "lifecycle",
    )
    assert variable.where == f"{s.file}:15"
    uses = {u.what: u.where for u in s.uses}
    assert uses["role:infranode_tests.hello_service"] == f"{s.directory / 'converge.yml'}:7"
    assert uses["env:MOLECULE_SCENARIO_NAME"] == f"{s.directory / 'prepare.yml'}:7"


def test_the_cluster_scenario_three_nodes_in_two_groups() -> None:
    s = read_scenario(CLUSTER, environ={})
    assert [(p.name, p.groups) for p in s.platforms] == [
        ("server-1", ("servers",)),
        ("client-1", ("clients",)),
        ("client-2", ("clients",)),
    ]
    assert {p.image for p in s.platforms} == {"debian:12"}  # ${CLUSTER_IMAGE:-debian:12}
    assert s.platforms[0].networks == (Network("cluster"),)
    assert s.platforms[0].published_ports == ("0.0.0.0:7000:7000/tcp",)
    assert s.platforms[1].capabilities == ("NET_ADMIN",)
    assert s.platforms[2].hostname == "second-client"
    assert s.provisioner.inventory.links == {"group_vars": "../../inventory/group_vars/"}
    assert s.provisioner.env == {"ANSIBLE_ROLES_PATH": f"{CLUSTER}/.."}
    kinds = {v.name: (v.kind, v.value) for v in s.variables}
    assert kinds == {
        "CLUSTER_IMAGE": ("default", "debian:12"),
        "MOLECULE_PROJECT_DIRECTORY": ("molecule", str(CLUSTER)),
        "MOLECULE_INVENTORY_FILE": ("runtime", ""),  # in verifier.env: the session knows it
    }
    assert s.verifier.env == {
        "CLUSTER_SPEC_PORT": "7001",
        "CLUSTER_SPEC_INVENTORY": "${MOLECULE_INVENTORY_FILE}",
    }


def test_the_specs_host_selection_and_host_ansible_are_found_in_code() -> None:
    s = read_scenario(CLUSTER, environ={})
    tests = s.directory / "tests"
    uses = {u.what: u.where for u in s.uses}
    # test_clients.py's docstring names host.ansible on line 1: only code counts
    assert uses["testinfra_hosts"] == f"{tests / 'test_clients.py'}:3"
    assert uses["host.ansible"] == f"{tests / 'test_clients.py'}:13"
    assert uses["env:MOLECULE_INVENTORY_FILE"] == f"{tests / 'test_servers.py'}:8"
    assert uses["cross-host:delegate_to"] == f"{CLUSTER / 'tasks' / 'main.yml'}:15"
    assert uses["cross-host:hostvars"] == f"{CLUSTER / 'templates' / 'cluster.conf.j2'}:6"
    assert "testinfra_hosts" not in {u.what for u in read_scenario(HELLO, environ={}).uses}


def test_the_environment_fills_variables() -> None:
    s = read_scenario(CLUSTER, environ={"CLUSTER_IMAGE": "debian:13"})
    assert {p.image for p in s.platforms} == {"debian:13"}
    variable = next(v for v in s.variables if v.name == "CLUSTER_IMAGE")
    assert (variable.kind, variable.value) == ("environment", "debian:13")


def test_role_references_in_roles_and_include_role_tasks() -> None:
    text = textwrap.dedent(
        """
        - hosts: all
          roles:
            - common
            - role: web
          tasks:
            - block:
                - ansible.builtin.include_role: {name: inner}
            - import_role:
                name: "{{ x }}"
        """
    )
    assert role_references(text) == ["common", "web", "inner", "{{ x }}"]
    assert role_references("not: [valid") == []


# --- where a scenario comes from ----------------------------------------------------------------


def test_find_role_dir_from_the_role_or_below_it(tmp_path: Path) -> None:
    folder = role(tmp_path, MINIMAL)
    assert find_role_dir(folder) == folder.resolve()
    assert find_role_dir(folder / "molecule" / "default") == folder.resolve()
    with pytest.raises(SettingsError, match="no Molecule scenario here") as err:
        find_role_dir(tmp_path)
    assert "molecule/<scenario>/molecule.yml" in err.value.what
    assert "--role DIR" in err.value.fix


def test_an_unknown_scenario_is_named_with_the_close_one(tmp_path: Path) -> None:
    folder = role(tmp_path, MINIMAL, scenario="default")
    with pytest.raises(SettingsError, match="no Molecule scenario 'defualt'") as err:
        read_scenario(folder, "defualt", environ={})
    assert err.value.fix == "did you mean 'default'? Scenarios here: default"


def test_the_base_config_is_merged_under_molecule_yml(tmp_path: Path) -> None:
    folder = role(tmp_path, "platforms: [{name: mine, image: debian:13}]\n")
    base = folder / ".config" / "molecule" / "config.yml"
    base.parent.mkdir(parents=True)
    base.write_text(
        "driver:\n  name: docker\nplatforms: [{name: base, image: debian:12}]\n"
        "provisioner:\n  env: {A: base, B: base}\n",
        encoding="utf-8",
    )
    (folder / "molecule" / "default" / "molecule.yml").write_text(
        "platforms: [{name: mine, image: debian:13}]\nprovisioner:\n  env: {B: mine}\n", encoding="utf-8"
    )
    s = read_scenario(folder, environ={})
    assert [p.name for p in s.platforms] == ["mine"]  # lists are replaced, not merged
    assert s.provisioner.env == {"A": "base", "B": "mine"}  # mappings merge key by key
    assert s.driver == "docker"
    assert s.sources == (base, s.file)
    assert s.at("driver.name") == f"{base}:2"
    assert s.at("provisioner.env.B") == f"{s.file}:3"


def test_merge_is_molecules() -> None:
    assert merge({"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2]}, "c": 3}) == {
        "a": {"x": 1, "y": [2]},
        "b": 1,
        "c": 3,
    }


def test_the_env_file_adds_to_the_environment(tmp_path: Path) -> None:
    folder = role(tmp_path, "platforms: [{name: i, image: '${IMG}'}]\n")
    (folder / ".env.yml").write_text("IMG: from-env-file:1\n", encoding="utf-8")
    assert read_scenario(folder, environ={"IMG": "from-environ:1"}).platforms[0].image == "from-env-file:1"


def test_the_newer_ansible_section_is_read_like_the_legacy_keys(tmp_path: Path) -> None:
    folder = role(
        tmp_path,
        """
        platforms: [{name: i, image: debian:12}]
        ansible:
          cfg: {defaults: {forks: 5}}
          env: {X: "1"}
          executor: {args: {ansible_playbook: [--diff]}}
          playbooks: {converge: site.yml}
        """,
        converge=False,
    )
    (folder / "molecule" / "default" / "site.yml").write_text("- hosts: all\n", encoding="utf-8")
    s = read_scenario(folder, environ={})
    assert s.provisioner.config_options == {"defaults": {"forks": 5}}
    assert s.provisioner.env == {"X": "1"}
    assert s.provisioner.ansible_args == ("--diff",)
    assert s.provisioner.playbooks.converge.name == "site.yml"


def test_the_deprecated_playbook_yml_is_the_converge(tmp_path: Path) -> None:
    folder = role(tmp_path, MINIMAL, converge=False)
    (folder / "molecule" / "default" / "playbook.yml").write_text("- hosts: all\n", encoding="utf-8")
    assert read_scenario(folder, environ={}).provisioner.playbooks.converge.name == "playbook.yml"


def test_the_default_dockerfile_is_used_when_the_image_is_not_pre_built(tmp_path: Path) -> None:
    folder = role(tmp_path, MINIMAL)
    assert read_scenario(folder, environ={}).platforms[0].dockerfile == ""  # Molecule's own default
    dockerfile = folder / "molecule" / "default" / "Dockerfile.j2"
    dockerfile.write_text("FROM {{ item.image }}\n", encoding="utf-8")
    assert read_scenario(folder, environ={}).platforms[0].dockerfile == str(dockerfile)


def test_requirements_of_the_galaxy_dependency_are_found(tmp_path: Path) -> None:
    folder = role(tmp_path, MINIMAL)
    requirements = folder / "molecule" / "default" / "requirements.yml"
    requirements.write_text("collections: [community.general]\n", encoding="utf-8")
    assert read_scenario(folder, environ={}).dependency.requirements == (requirements,)


# --- interpolation ------------------------------------------------------------------------------


def test_interpolation_is_molecules(tmp_path: Path) -> None:
    path = tmp_path / "molecule.yml"
    text = (
        "a: $A\nb: ${B:-dflt}\nc: ${C-dflt}\nd: ${D}\ne: $$5\nf: ${MOLECULE_INVENTORY_FILE}\ng: $MOLECULE_X\n"
    )
    out, used = interpolate(
        text,
        path=path,
        environ={"A": "1", "B": "", "C": "", "MOLECULE_X": "env"},
        molecule={"MOLECULE_X": "m"},
    )
    assert out == "a: 1\nb: dflt\nc: \nd: \ne: $5\nf: ${MOLECULE_INVENTORY_FILE}\ng: m\n"
    assert [(v.name, v.kind, v.value, v.where) for v in used] == [
        ("A", "environment", "1", f"{path}:1"),
        ("B", "default", "dflt", f"{path}:2"),  # :- takes the default for an empty value
        ("C", "environment", "", f"{path}:3"),  # - only for an unset one
        ("D", "unset", "", f"{path}:4"),
        ("MOLECULE_INVENTORY_FILE", "runtime", "", f"{path}:6"),
        ("MOLECULE_X", "molecule", "m", f"{path}:7"),  # Molecule's own win over the environment
    ]


def test_a_lone_dollar_is_an_error_with_its_line(tmp_path: Path) -> None:
    folder = role(tmp_path, "platforms:\n  - name: i\n    image: debian:12\n    command: echo $ 5\n")
    with pytest.raises(SettingsError, match="a `\\$` that starts no variable") as err:
        read_scenario(folder, environ={})
    assert err.value.where == f"{folder / 'molecule' / 'default' / 'molecule.yml'}:4"
    assert "`$$`" in err.value.fix


# --- mistakes, each with its file and line ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "what", "fix"),
    [
        ("platforms:\n  - name: i\n   image: x\n", 3, "not valid YAML", "correct the YAML syntax"),
        ("- just\n- a list\n", 1, "must be a mapping, not a list", "write Molecule's keys"),
        (MINIMAL + "platfroms: []\n", 5, "unknown key 'platfroms'", "did you mean 'platforms'?"),
        ("driver: {name: docker}\n", 0, "no `platforms:` list", "write `platforms: [{name: instance"),
        ("platforms:\n  - image: debian:12\n", 2, "platform 1 has no `name`", "give it `name: instance`"),
        (
            "platforms:\n  - {name: a, image: x}\n  - {name: a, image: y}\n",
            3,
            "two platforms are called 'a'",
            "give each platform its own name",
        ),
        (
            "platforms:\n  - name: a\n    image: x\n    groups: {web: 1}\n",
            4,
            "`platforms.0.groups` must be a list of strings",
            "write `groups: [web]`",
        ),
        (
            "platforms:\n  - name: a\n    image: x\n    cgroupns_mode: shared\n",
            4,
            "`cgroupns_mode` must be host or private",
            "write `cgroupns_mode: host`",
        ),
        (
            "platforms:\n  - name: a\n    image: x\n    privileged: yes please\n",
            4,
            "`platforms.0.privileged` must be true or false",
            "write `privileged: true`",
        ),
        (
            MINIMAL + "provisioner:\n  playbooks:\n    prepare: nothere.yml\n",
            7,
            "the prepare playbook 'nothere.yml' does not exist",
            "relative to the scenario's folder",
        ),
        (
            MINIMAL + "provisioner:\n  playbooks:\n    sideeffect: x.yml\n",
            7,
            "unknown playbook 'sideeffect'",
            "did you mean 'side_effect'?",
        ),
        (
            MINIMAL + "provisioner:\n  name: chef\n",
            6,
            "unknown provisioner 'chef'",
            "provisioner: {name: ansible}",
        ),
        (
            MINIMAL + "verifier:\n  name: testinfr\n",
            6,
            "unknown verifier 'testinfr'",
            "did you mean 'testinfra'?",
        ),
        (
            MINIMAL + "provisioner:\n  inventory:\n    group_vars: {web: [1]}\n",
            7,
            "`provisioner.inventory.group_vars.web` must be a mapping",
            "web: {variable: value}",
        ),
        (
            MINIMAL + "provisioner:\n  env: {A: [1]}\n",
            6,
            "`provisioner.env.A` must be a string",
            'write `A: "value"`',
        ),
    ],
)
def test_a_mistake_names_its_file_and_line(tmp_path: Path, text: str, line: int, what: str, fix: str) -> None:
    folder = role(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        read_scenario(folder, environ={})
    file = folder / "molecule" / "default" / "molecule.yml"
    assert what in err.value.what
    # line 0: the key is missing, so the file itself is named
    assert err.value.where.split(":")[:2] == ([str(file), str(line)] if line else [str(file)])
    assert fix in err.value.fix


def test_a_scenario_without_a_converge_playbook_says_where_it_looked(tmp_path: Path) -> None:
    folder = role(tmp_path, MINIMAL, converge=False)
    with pytest.raises(SettingsError, match="no converge playbook") as err:
        read_scenario(folder, environ={})
    assert str(folder / "molecule" / "default" / "converge.yml") in err.value.what
    assert "write converge.yml next to molecule.yml" in err.value.fix
