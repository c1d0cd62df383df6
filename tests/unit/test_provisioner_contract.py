"""What the rest of the plugin learns from a provisioner goes through its contract. No daemon."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_infranode import convergecache
from pytest_infranode.progress import ProgressPlugin
from pytest_infranode.provisioners.ansible import AnsibleProvisioner
from pytest_infranode.provisioners.base import AnnouncesSteps
from pytest_infranode.provisioners.base import DeclaresInputs
from pytest_infranode.provisioners.base import DeclaresTools
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import has_secrets
from pytest_infranode.provisioners.base import secret_names
from pytest_infranode.provisioners.base import secrets_of
from pytest_infranode.provisioners.base import step_reader
from pytest_infranode.provisioners.base import tool_distributions
from pytest_infranode.provisioners.chef import ChefProvisioner
from pytest_infranode.provisioners.puppet import PuppetProvisioner
from pytest_infranode.provisioners.pyinfra import PyinfraProvisioner
from pytest_infranode.provisioners.salt import SaltProvisioner
from pytest_infranode.provisioners.shell import ShellProvisioner
from pytest_infranode.settings import ProvisionerConfig


def test_secret_env_is_read_in_one_place() -> None:
    config = ProvisionerConfig(options={"secret_env": ["TOKEN", "UNSET", 3]})
    assert secret_names(config) == ["TOKEN", "UNSET"]
    assert secrets_of(config, {"TOKEN": "s3cr3t"}) == ["s3cr3t"]
    assert has_secrets(config)
    assert not has_secrets(ProvisionerConfig())
    assert secret_names(ProvisionerConfig(options={"secret_env": "TOKEN"})) == []


def test_ansible_declares_the_playbooks_neighbours_as_inputs(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n")
    (tmp_path / "roles" / "web").mkdir(parents=True)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "unrelated").mkdir()
    config = ProvisionerConfig(name="ansible", options={"playbook": "site.yml"}, base_dir=tmp_path)
    assert isinstance(AnsibleProvisioner(), DeclaresInputs)
    found = convergecache.input_paths(AnsibleProvisioner(), config)
    assert found == sorted(
        p.resolve() for p in (tmp_path / "site.yml", tmp_path / "roles", tmp_path / "group_vars")
    )


def test_tools_whose_version_is_in_the_key() -> None:
    assert isinstance(AnsibleProvisioner(), DeclaresTools)
    assert tool_distributions(AnsibleProvisioner()) == ("ansible-core", "ansible")
    assert tool_distributions(PyinfraProvisioner()) == ("pyinfra",)
    assert tool_distributions(ShellProvisioner()) == ()
    assert not isinstance(ShellProvisioner(), DeclaresInputs)


# the steps a tool announces, for the live progress lines
ANSIBLE, PYINFRA, CHEF = AnsibleProvisioner(), PyinfraProvisioner(), ChefProvisioner()
HEADER = "$ /opt/infranode-salt/bin/salt-call --local state.apply"


@pytest.mark.parametrize(
    ("provisioner", "line", "step"),
    [
        (ANSIBLE, "TASK [web : Install nginx and curl] *********", "TASK [web : Install nginx and curl]"),
        (ANSIBLE, "PLAY [all] ***", "PLAY [all]"),
        (ANSIBLE, "RUNNING HANDLER [web : reload nginx] ***", "RUNNING HANDLER [web : reload nginx]"),
        (ANSIBLE, "ok: [debian-12]", None),
        (PYINFRA, "--> Starting operation: Install nginx", "Starting operation: Install nginx"),
        (PYINFRA, "--> Loading config...", "Loading config..."),
        (PYINFRA, "    [infranode-x] Success", None),
        (CHEF, "  * apt_package[nginx] action install", "apt_package[nginx]"),
        (CHEF, "Recipe: web::default", None),
        *((p, HEADER, HEADER) for p in (ANSIBLE, PYINFRA, CHEF)),
    ],
)
def test_a_provisioner_says_which_of_its_lines_name_a_step(
    provisioner: AnnouncesSteps, line: str, step: str | None
) -> None:
    assert isinstance(provisioner, AnnouncesSteps)
    assert provisioner.step_of(line) == step


@pytest.mark.parametrize("provisioner", [ShellProvisioner(), PuppetProvisioner(), SaltProvisioner()])
def test_without_step_of_the_command_headers_are_the_steps(provisioner: Provisioner) -> None:
    assert not isinstance(provisioner, AnnouncesSteps)
    read = step_reader(provisioner)
    assert read(HEADER) == HEADER
    assert read("Notice: /Stage[main]/Web/Package[nginx]/ensure: created") is None
    assert read("TASK [not this tool's] ***") is None


def test_the_progress_reads_the_steps_of_the_provisioner_that_converges(tmp_path: Path) -> None:
    """The live progress learns from the provisioner the converge hook is given, not its name."""
    node = SimpleNamespace(name="infranode-x-debian-12", short_name="web")
    plugin = ProgressPlugin(lambda _line: None, tmp_path, tty=True)
    lines = b"--> Starting operation: Install nginx\nTASK [web : x] ***\n"
    for provisioner, step in ((PYINFRA, "Starting operation: Install nginx"), (ANSIBLE, "TASK [web : x]")):
        progress = plugin.progress_of(node, provisioner)  # type: ignore[arg-type]
        progress.feed(lines)
        assert progress.step == step


def test_nothing_outside_provisioners_names_a_provisioner() -> None:
    """The converge cache, the session and its parts, the progress lines: every module outside
    ``provisioners/`` (and the Molecule importer) learns about provisioners from the contract, in
    code and in comments."""
    package = Path(convergecache.__file__).parent
    names = re.compile(r"\b(ansible|pyinfra|puppet|salt|chef|cinc)\b", re.IGNORECASE)
    for module in sorted(package.rglob("*.py")):
        parts = module.relative_to(package).parts
        # molecule/ reads the files of an Ansible tool and writes the ansible provisioner's
        # configuration: that provisioner is its subject, not knowledge leaking into the session
        if "provisioners" in parts or parts[0] == "molecule":
            continue
        found = names.findall(module.read_text())
        assert not found, f"{module.relative_to(package)} names {sorted(set(found))}"
