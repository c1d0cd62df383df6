"""A Molecule scenario in the plugin's terms: the infranode.yaml it makes (which the plugin's own
settings accept), and every gap with its reason. No daemon."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_infranode.errors import SettingsError
from pytest_infranode.molecule import render
from pytest_infranode.molecule.reader import read_scenario
from pytest_infranode.molecule.translate import Gap
from pytest_infranode.molecule.translate import Translation
from pytest_infranode.molecule.translate import builtin_for_image
from pytest_infranode.molecule.translate import dict2args
from pytest_infranode.molecule.translate import guess_base
from pytest_infranode.molecule.translate import guess_package_manager
from pytest_infranode.molecule.translate import node_name
from pytest_infranode.molecule.translate import normalize_image
from pytest_infranode.molecule.translate import render_ansible_cfg
from pytest_infranode.molecule.translate import translate
from pytest_infranode.platforms import SYSTEMD_TMPFS
from pytest_infranode.provisioners import ansible
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import Settings
from pytest_infranode.settings import build_settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"


def of(role: str, scenario: str = "default", *, allow_privileged: bool = False) -> Translation:
    return translate(read_scenario(FIXTURES / role, scenario, environ={}), allow_privileged=allow_privileged)


def scenario_in(tmp_path: Path, molecule_yml: str, **files: str) -> Translation:
    folder = tmp_path / "myrole" / "molecule" / "default"
    folder.mkdir(parents=True)
    (tmp_path / "myrole" / "tasks").mkdir()
    (tmp_path / "myrole" / "tasks" / "main.yml").write_text("[]\n", encoding="utf-8")
    (folder / "molecule.yml").write_text(textwrap.dedent(molecule_yml).lstrip("\n"), encoding="utf-8")
    (folder / "converge.yml").write_text("- hosts: all\n  roles: [myrole]\n", encoding="utf-8")
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text, encoding="utf-8")
    return translate(read_scenario(tmp_path / "myrole", environ={}))


def subjects(t: Translation) -> dict[str, Gap]:
    return {g.subject: g for g in t.gaps}


def settings_of(t: Translation, tmp_path: Path) -> Settings:
    """Write the translation as the import does, into a copy of the role, and read it back with
    the plugin's own settings (and the ansible provisioner's checks)."""
    role = t.scenario.role.directory
    copy = tmp_path / "copy" / role.name
    shutil.copytree(role, copy)
    config_dir = copy / t.config_dir.relative_to(role)
    (config_dir / "infranode.yaml").write_text(render.infranode_yaml(t), encoding="utf-8")
    for name, text in t.files.items():
        (config_dir / name).write_text(text, encoding="utf-8")
    settings = build_settings(RawOptions(), config_dir)
    ansible.validate(settings.provisioner)
    assert settings.platforms  # chosen from the catalog when settings are built
    return settings


# --- the fixture roles --------------------------------------------------------------------------


def test_the_systemd_scenario_becomes_one_named_node_on_debian_12() -> None:
    t = of("hello_service")
    assert t.layout == "nodes"
    assert t.config_dir == FIXTURES / "hello_service" / "molecule" / "default"
    assert dict(t.data) == {
        "platforms": ["debian-12"],
        "idempotence": True,
        "provisioner": {
            "name": "ansible",
            "playbook": "converge.yml",
            "roles_path": "../../..",
            "config": "infranode-ansible.cfg",
            "args": ["--skip-tags", "molecule-notest,notest"],
            "idempotence_skip_tags": ["molecule-idempotence-notest"],
            "host_vars": {"instance": {"hello_message": "hello from the instance"}},
        },
        "nodes": {"instance": {"env": {"HELLO_ENV": "from-molecule"}}},
    }
    assert t.files == {
        "infranode-ansible.cfg": "# Written by `infranode import molecule` from provisioner.config_options.\n"
        "[defaults]\ngathering = smart\nstdout_callback = default\n"
    }
    assert t.tests == (t.scenario.directory / "tests",)
    assert t.pytest_options == ("-v",)


def test_privileged_maps_to_the_least_privilege_recipe_with_a_warning() -> None:
    t = of("hello_service")
    [gap] = t.gaps  # the cgroup volume, cgroupns, tmpfs and systemd command are the recipe's
    assert gap.kind == "changed"
    assert gap.subject == "platform instance: privileged: true"
    assert gap.where == f"{t.scenario.file}:12"
    assert "least-privilege systemd recipe" in gap.reason
    assert "--allow-privileged" in gap.fix
    allowed = of("hello_service", allow_privileged=True)
    assert allowed.gaps == ()
    assert allowed.data["platform_definitions"] == {"debian-12": {"privileged": True}}


def test_the_written_systemd_scenario_is_accepted_by_the_plugin(tmp_path: Path) -> None:
    settings = settings_of(of("hello_service"), tmp_path)
    assert [p.name for p in settings.platforms] == ["debian-12"]
    assert settings.idempotence is True
    assert [(n.name, dict(n.env)) for n in settings.nodes] == [("instance", {"HELLO_ENV": "from-molecule"})]
    assert settings.provisioner.name == "ansible"
    assert ansible.converge_args(settings.provisioner, again=True)[-2:] == [
        "--skip-tags",
        "molecule-idempotence-notest",
    ]
    roles = ansible._options(settings.provisioner).paths("roles_path", directory=True)
    assert [p.resolve() for p in roles] == [tmp_path / "copy"]  # roles_path: the role's parent folder
    assert (roles[0] / "hello_service" / "tasks" / "main.yml").is_file()


def test_the_cluster_becomes_three_nodes_in_two_groups(tmp_path: Path) -> None:
    t = of("cluster_hosts")
    assert t.layout == "nodes"
    assert t.data["nodes"] == {
        "server-1": {"groups": ["servers"], "ports": [7000]},
        "client-1": {"groups": ["clients"]},  # its NET_ADMIN is a systemd node's default
        "client-2": {"groups": ["clients"], "hostname": "second-client"},
    }
    prov = t.data["provisioner"]
    assert prov["groups"] == {"servers": ["server-1"], "clients": ["client-1", "client-2"]}
    assert prov["group_vars"] == {
        "servers": {"cluster_role": "server"},
        "clients": {"cluster_role": "client"},
    }
    assert prov["host_vars"] == {"server-1": {"cluster_port": 7001}}
    assert "roles_path" not in prov  # the scenario sets ANSIBLE_ROLES_PATH itself, which would win
    assert prov["env"] == {
        "ANSIBLE_ROLES_PATH": "../../..",  # ${MOLECULE_PROJECT_DIRECTORY}/.., relative again
        "MOLECULE_PROJECT_DIRECTORY": str(FIXTURES / "cluster_hosts"),  # for converge.yml's lookup
    }
    settings = settings_of(t, tmp_path)
    assert [(n.name, n.groups) for n in settings.nodes] == [
        ("server-1", ("servers",)),
        ("client-1", ("clients",)),
        ("client-2", ("clients",)),
    ]


def test_the_cluster_gaps_name_the_frictions_of_issue_19() -> None:
    t = of("cluster_hosts")
    gaps = subjects(t)
    tests = t.scenario.directory / "tests"
    # fixed in the nodes layout: the specs' hosts (1), one run (2), MOLECULE_* (3), host.ansible (5)
    for fixed in (
        "testinfra_hosts",
        "one Ansible run over the inventory",
        "MOLECULE_INVENTORY_FILE in a spec",
    ):
        assert fixed not in gaps
    assert "host.ansible" not in gaps
    assert {g.friction for g in t.gaps} == {3, 0}  # MOLECULE_PROJECT_DIRECTORY written
    assert tests.is_dir()
    assert "platform client-2: hostname" not in gaps  # fixed (6): the node's hostname:
    assert t.data["nodes"]["client-2"]["hostname"] == "second-client"
    assert "hostname" not in t.data["nodes"]["client-1"]
    # the link leaves the scenario's folder (the project): listed, unless the import may say so
    link = gaps["provisioner.inventory.links.group_vars"]
    assert link.kind == "unsupported"
    assert "outside the scenario's folder" in link.reason
    assert link.fix.endswith("or run the import again with --allow-outside-project")
    assert "inventory_links" not in t.data["provisioner"]
    port = gaps["platform server-1: published_ports"]
    assert (port.kind, port.fix) == ("changed", "ask the node for it in a spec: `infra_node.port(7000)`")
    assert gaps["${CLUSTER_IMAGE}"].kind == "changed"
    assert gaps["MOLECULE_PROJECT_DIRECTORY"].kind == "changed"  # an absolute path of this checkout
    # the default sleep command is one gap for the three nodes of the one platform
    assert gaps["platforms server-1, client-1, client-2: command"].kind == "changed"
    assert t.unsupported == (link,)


def test_infra_platform_retargets_the_nodes_layout(tmp_path: Path) -> None:
    """--infra-platform wins over the written `platforms:`; names, groups and vars stay."""
    t = of("cluster_hosts")
    written = settings_of(t, tmp_path)
    config_dir = written.config_file.parent if written.config_file else tmp_path
    settings = build_settings(RawOptions(cli_platforms="debian-13"), config_dir)
    assert [p.name for p in settings.platforms] == ["debian-13"]
    assert settings.nodes == written.nodes
    assert settings.provisioner.options == written.provisioner.options


def test_the_lifecycle_playbooks(tmp_path: Path) -> None:
    t = of("hello_service", "lifecycle")
    prov = t.data["provisioner"]
    assert prov["prepare"] == "prepare.yml"
    assert prov["args"] == ["--diff", "--skip-tags", "molecule-notest,notest"]
    assert prov["env"] == {"HELLO_SCENARIO": "lifecycle", "MOLECULE_SCENARIO_NAME": "lifecycle"}
    assert prov["groups"] == {"web": ["lifecycle-instance"]}
    assert t.data["platforms"] == ["debian-12"]  # docker.io/library/debian:bookworm
    assert prov["side_effect"] == "side_effect.yml"  # run by the ansible provisioner
    gaps = subjects(t)
    assert "side_effect playbook" not in gaps
    assert prov["verify"] == "verify.yml"  # verifier: ansible; collected as a test per platform
    assert t.tests == (t.scenario.directory / "verify.yml",)
    assert "verify playbook" not in gaps
    assert "Galaxy name" in gaps["role infranode_tests.hello_service"].reason
    assert "MOLECULE_SCENARIO_NAME" not in gaps  # a name, not a path: nothing to say
    settings_of(t, tmp_path)


# --- images and names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "normal", "builtin"),
    [
        ("debian:12", "debian:12", "debian-12"),
        ("docker.io/library/debian:bookworm", "debian:bookworm", "debian-12"),
        ("ubuntu:jammy", "ubuntu:jammy", "ubuntu-22.04"),
        ("quay.io/centos/centos:stream9", "quay.io/centos/centos:stream9", "centos-stream-9"),
        ("archlinux", "archlinux:latest", "archlinux"),
        ("localhost:5000/debian", "localhost:5000/debian:latest", None),
        ("geerlingguy/docker-debian12-ansible", "geerlingguy/docker-debian12-ansible:latest", None),
    ],
)
def test_images_map_to_the_builtin_platforms(image: str, normal: str, builtin: str | None) -> None:
    assert normalize_image(image) == normal
    found = builtin_for_image(image)
    assert (found.name if found else None) == builtin


def test_a_custom_image_starts_from_the_platform_it_is_made_from() -> None:
    for image, name in (
        ("geerlingguy/docker-debian12-ansible:latest", "debian-12"),
        ("geerlingguy/docker-ubuntu2204-ansible", "ubuntu-22.04"),
        ("registry.corp/rockylinux-9-systemd:3", "rockylinux-9"),
    ):
        found = guess_base(image)
        assert found is not None
        assert found.name == name
    assert guess_base("corp/base:1") is None
    assert guess_package_manager("corp/almalinux-custom") == "dnf"
    assert guess_package_manager("corp/base") == ""


def test_names_become_node_names() -> None:
    assert node_name("Server_1") == "server-1"
    assert node_name("ubuntu-22.04") == "ubuntu-22-04"
    assert node_name("1st") == "n-1st"
    assert len(node_name("x" * 40)) == 31


def test_dict2args_is_molecules() -> None:
    assert dict2args({"diff": True, "v": True, "skip-tags": "a,b", "check": False, "extra_vars": "x=1"}) == [
        "--diff",
        "--extra-vars",
        "x=1",
        "--skip-tags",
        "a,b",
        "-v",
    ]


def test_config_options_become_an_ansible_cfg() -> None:
    text = render_ansible_cfg({"defaults": {"forks": 5, "pipelining": True}, "ssh_connection": {"x": [1, 2]}})
    assert text.splitlines()[1:] == [
        "[defaults]",
        "forks = 5",
        "pipelining = True",
        "[ssh_connection]",
        "x = 1,2",
    ]


def test_a_scenario_on_several_images_is_one_platform_each(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms:
          - {name: Debian12, image: debian:12, pre_build_image: true, groups: [web], capabilities: [NET_RAW]}
          - {name: ubuntu, image: geerlingguy/docker-ubuntu2204-ansible, pre_build_image: true, groups: [web]}
          - {name: other, image: corp/base:1, pre_build_image: true, env: {A: "1"}}
        provisioner:
          inventory:
            host_vars: {Debian12: {x: 1}}
        """,
    )
    assert t.layout == "platforms"
    assert t.renamed == {"Debian12": "debian12"}
    assert t.data["platforms"] == ["debian12", "ubuntu", "other"]
    assert t.data["platform_definitions"] == {
        "debian12": {"base": "debian-12", "image": "debian:12"},
        "ubuntu": {"base": "ubuntu-22.04", "image": "geerlingguy/docker-ubuntu2204-ansible"},
        "other": {"image": "corp/base:1", "package_manager": "apt"},
    }
    # each a named node, made on its own platform: hostname and inventory name are its name
    assert t.data["nodes"] == {
        "debian12": {"groups": ["web"], "capabilities": ["NET_RAW"], "platform": "debian12"},
        "ubuntu": {"groups": ["web"], "platform": "ubuntu"},
        "other": {"env": {"A": "1"}, "platform": "other"},
    }
    prov = t.data["provisioner"]
    assert prov["groups"] == {"web": ["debian12", "ubuntu"]}
    assert prov["host_vars"] == {"debian12": {"x": 1}}  # re-keyed to the new name
    gaps = subjects(t)
    assert not any(g.endswith(": hostname") for g in gaps)
    assert gaps["platform other: image"].kind == "changed"
    assert gaps["platform Debian12: name"].kind == "changed"
    settings = settings_of(t, tmp_path)
    catalog = settings.catalog
    assert catalog.get("ubuntu").image == "geerlingguy/docker-ubuntu2204-ansible"
    assert catalog.get("ubuntu").init == "systemd"
    assert [(n.name, n.platform, n.capabilities) for n in settings.nodes] == [
        ("debian12", "debian12", ("NET_RAW",)),
        ("ubuntu", "ubuntu", ()),
        ("other", "other", ()),
    ]


# --- platform keys ------------------------------------------------------------------------------


def test_platform_keys_the_plugin_has_no_equivalent_for_are_listed(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms:
          - name: i
            image: debian:12
            pre_build_image: true
            command: sleep infinity
            tmpfs: [/run, "/var/cache/x:size=64m"]
            volumes: [/sys/fs/cgroup:/sys/fs/cgroup:ro, /srv/data:/data]
            devices: [/dev/fuse]
            exposed_ports: [80/tcp]
            published_ports: ["53/udp", "8000-8010:8000-8010", "80"]
            networks: [{name: n, aliases: [www]}]
            children: [kids]
            network_mode: host
        """,
    )
    assert t.data["platform_definitions"] == {
        "debian-12": {
            "init": "none",
            "command": ["sleep", "infinity"],
            "tmpfs": {**SYSTEMD_TMPFS, "/var/cache/x": "size=64m"},
        }
    }
    assert t.data["nodes"] == {"i": {"ports": [80]}}
    reasons = {(g.subject, g.reason) for g in t.gaps}
    assert ("platform i: devices", "not carried over: nodes get no host devices") in reasons
    assert not [g for g in t.gaps if "exposed_ports" in g.subject]  # changes nothing here
    volume = next(g for g in t.gaps if g.subject == "platform i: volumes")
    assert volume.reason.startswith("'/srv/data:/data' is not mounted")
    ports = [g.reason for g in t.gaps if g.subject == "platform i: published_ports"]
    assert ports == [
        "'53/udp' is not published: only TCP ports are",
        "'8000-8010:8000-8010' (a range?) is not carried over: ports are published one by one",
    ]
    assert {"platform i: children", "platform i: networks", "platform i: network_mode"} <= set(subjects(t))


def test_the_images_own_command_and_the_molecule_dockerfile(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms:
          - {name: i, image: debian:12, override_command: false}
        """,
        Dockerfile__j2="FROM {{ item.image }}\nRUN true\n",
    )
    assert t.data["platform_definitions"] == {"debian-12": {"init": "none", "command": []}}
    gap = subjects(t)["platform i: dockerfile"]
    assert "Jinja2 template" in gap.reason
    plain = scenario_in(
        tmp_path / "plain",
        """
        driver: {name: docker}
        platforms:
          - {name: i, image: debian:12, override_command: false, privileged: true}
        """,
        Dockerfile__j2="FROM debian:12\nRUN apt-get update\n",
    )
    # override_command: false with the systemd recipe's keys: the image's command is its init
    assert plain.data["platform_definitions"] == {
        "debian-12": {"base": "debian-12", "image": "molecule_local/debian:12", "dockerfile": "Dockerfile.j2"}
    }


def test_names_that_are_no_hostnames_are_renamed_with_their_vars(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms:
          - {name: Web_1, image: debian:12, pre_build_image: true}
          - {name: web-1, image: debian:12, pre_build_image: true}
        provisioner:
          inventory:
            host_vars: {Web_1: {port: 1}}
        """,
    )
    assert list(t.data["nodes"]) == ["web-1", "web-1-2"]
    assert t.renamed == {"Web_1": "web-1", "web-1": "web-1-2"}
    assert t.data["provisioner"]["host_vars"] == {"web-1": {"port": 1}}
    assert subjects(t)["platform Web_1: name"].friction == 6


def test_a_platform_without_an_image_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="platform 'i' has no image") as err:
        scenario_in(tmp_path, "driver: {name: docker}\nplatforms:\n  - name: i\n")
    assert err.value.where.endswith("molecule.yml:3")


# --- provisioner, sequence, verifier ------------------------------------------------------------


def test_provisioner_options_env_and_connection(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms: [{name: i, image: debian:12, pre_build_image: true}]
        provisioner:
          name: ansible
          options: {vvv: true, become: true}
          ansible_args: [--tags, web]
          env:
            ANSIBLE_CALLBACKS_ENABLED: profile_tasks
            ANSIBLE_FORKS: "5"
          connection_options: {ansible_user: deploy, ansible_connection: docker}
          log: true
          lint: {name: ansible-lint}
        """,
    )
    prov = t.data["provisioner"]
    assert prov["args"] == ["--become", "--skip-tags", "molecule-notest,notest", "-vvv", "--tags", "web"]
    assert prov["env"] == {"ANSIBLE_FORKS": "5"}
    assert prov["host_vars"] == {"i": {"ansible_user": "deploy"}}
    gaps = subjects(t)
    assert "the plugin sets it itself" in gaps["provisioner.env.ANSIBLE_CALLBACKS_ENABLED"].reason
    assert gaps["provisioner.connection_options"].reason.startswith("ansible_connection not carried over")
    assert gaps["provisioner.lint"].reason == "not carried over: the plugin has no equivalent"
    assert "provisioner.log" not in gaps


def test_the_test_sequence(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms: [{name: i, image: debian:12, pre_build_image: true}]
        scenario:
          test_sequence: [dependency, converge, verify, idempotence, check, mine]
        """,
        requirements__yml="roles: []\n",
    )
    assert t.data["idempotence"] is True
    gaps = [(g.subject, g.reason) for g in t.gaps]
    assert ("check", "ansible-playbook --check is not run") in gaps
    assert ("action mine", "not one of Molecule's own actions: not run") in gaps
    assert (
        "scenario.test_sequence",
        "the order is the plugin's: prepare, converge, idempotence, side effect, then the specs",
    ) in gaps
    dependency = subjects(t)["dependency"]
    assert "requirements.yml are not installed" in dependency.reason
    assert "ansible-galaxy install -r molecule/default/requirements.yml" in dependency.fix
    quiet = scenario_in(
        tmp_path / "q",
        "driver: {name: docker}\nplatforms: [{name: i, image: debian:12, pre_build_image: true, "
        "command: /sbin/init}]\nscenario: {test_sequence: [converge]}\n",
    )
    assert "idempotence" not in quiet.data
    assert "idempotence_skip_tags" not in quiet.data["provisioner"]
    assert quiet.gaps == ()


def test_verifier_options(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        """
        driver: {name: docker}
        platforms: [{name: i, image: debian:12, pre_build_image: true}]
        verifier:
          name: testinfra
          options: {v: true, sudo: true, x: true, p: "no:cacheprovider"}
          env: {A: "1"}
        """,
    )
    assert t.pytest_options == ("-v", "-x")
    gaps = subjects(t)
    assert "the `host` fixture is the plugin's" in gaps["verifier.options.sudo"].reason
    assert "verifier.env" not in gaps  # the session reads it from molecule.yml, next to infranode.yaml
    assert "no test_*.py" in gaps["verifier testinfra"].reason


def test_another_driver_is_listed(tmp_path: Path) -> None:
    t = scenario_in(
        tmp_path,
        "driver: {name: delegated}\nplatforms: [{name: i, image: debian:12, pre_build_image: true}]\n",
    )
    assert "Molecule's 'delegated' driver" in subjects(t)["driver delegated"].reason


def test_an_infranode_yaml_elsewhere_says_its_paths_move(tmp_path: Path) -> None:
    scenario = read_scenario(FIXTURES / "hello_service", environ={})
    t = translate(scenario, config_dir=FIXTURES / "hello_service")
    assert t.data["provisioner"]["playbook"] == "molecule/default/converge.yml"
    assert t.data["provisioner"]["roles_path"] == ".."
    assert subjects(t)["infranode.yaml's folder"].kind == "changed"


def test_the_written_file_lists_its_gaps_as_comments() -> None:
    text = render.infranode_yaml(of("cluster_hosts"))
    assert text.startswith("# Written by `infranode import molecule default` from molecule.yml.\n")
    data = yaml.safe_load(text)
    assert data["platforms"] == ["debian-12"]
    assert "testinfra_hosts" not in text  # the specs' own host selection works: not listed
    assert "platform client-2: hostname" not in text  # carried over as the node's hostname:
    assert data["nodes"]["client-2"]["hostname"] == "second-client"


def test_the_pytest_command_finds_infranode_yaml(tmp_path: Path) -> None:
    t = of("hello_service")
    assert render.pytest_command(t, FIXTURES / "hello_service") == [
        "pytest",
        "--rootdir=molecule/default",
        "molecule/default/tests",
        "-v",
    ]


def test_cross_host_use_is_no_gap_in_the_platforms_layout_and_host_selection_works(tmp_path: Path) -> None:
    """Each platform of the different-images layout has its own named node: the specs' hosts
    choose among them by name, and on the scenario's own images the nodes are one span (one
    network, one inventory, one run), so neither cross-host references nor
    MOLECULE_INVENTORY_FILE nor the platforms' networks are a gap any more."""
    role = tmp_path / "myrole"
    folder = role / "molecule" / "default"
    (folder / "tests").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "tasks" / "main.yml").write_text("- debug: {msg: \"{{ hostvars['b'] }}\"}\n")
    (folder / "molecule.yml").write_text(
        "driver: {name: docker}\nverifier: {name: testinfra}\n"
        "platforms:\n  - {name: a, image: debian:12}\n  - {name: b, image: debian:13}\n"
    )
    (folder / "converge.yml").write_text("- hosts: all\n  roles: [myrole]\n")
    (folder / "tests" / "test_x.py").write_text(
        "import os\ntestinfra_hosts = [os.environ['MOLECULE_INVENTORY_FILE'] and 'ansible://a']\n"
    )
    t = translate(read_scenario(role, environ={}))
    gaps = subjects(t)
    assert t.layout == "platforms"
    assert "testinfra_hosts" not in gaps
    assert "one Ansible run over the inventory" not in gaps
    assert "MOLECULE_INVENTORY_FILE in a spec" not in gaps
    assert [u for u in t.scenario.uses if u.what == "cross-host:hostvars"]  # it was found, and is fine
    assert t.data["nodes"] == {"a": {"platform": "a"}, "b": {"platform": "b"}}
    assert not [g for g in gaps if g.endswith(": networks")]


def test_inventory_links_are_the_session_inventorys(tmp_path: Path) -> None:
    """Molecule's provisioner.inventory.links: linked next to the session inventory (the
    ansible provisioner's inventory_links), inside the project or with allow_outside_project."""
    role = FIXTURES / "cluster_hosts"
    t = translate(read_scenario(role, environ={}), allow_outside_project=True)
    assert t.data["provisioner"]["inventory_links"] == {"group_vars": "../../inventory/group_vars"}
    assert t.data["allow_outside_project"] is True
    assert subjects(t)["provisioner.inventory.links.group_vars"].kind == "changed"
    settings = settings_of(t, tmp_path)
    assert settings.provisioner.options["inventory_links"] == {"group_vars": "../../inventory/group_vars"}
    role_dir = tmp_path / "inside" / "myrole"
    folder = role_dir / "molecule" / "default"
    (folder / "vars" / "hosts").mkdir(parents=True)
    (role_dir / "tasks").mkdir()
    (role_dir / "tasks" / "main.yml").write_text("[]\n")
    (folder / "vars" / "hosts" / "i.yml").write_text("x: 1\n")
    (folder / "hosts.yml").write_text("all: {}\n")
    (folder / "converge.yml").write_text("- hosts: all\n  roles: [myrole]\n")
    (folder / "molecule.yml").write_text(
        "driver: {name: docker}\nplatforms: [{name: i, image: debian:12, pre_build_image: true}]\n"
        "provisioner: {name: ansible, inventory: {links: {host_vars: vars/hosts/, hosts: hosts.yml}}}\n"
    )
    inside = translate(read_scenario(role_dir, environ={}))
    assert inside.data["provisioner"]["inventory_links"] == {"host_vars": "vars/hosts"}
    assert "allow_outside_project" not in inside.data
    gaps = subjects(inside)
    assert "provisioner.inventory.links.host_vars" not in gaps
    assert gaps["provisioner.inventory.links.hosts"].fix == "write those hosts' variables into `host_vars:`"
