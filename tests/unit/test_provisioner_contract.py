"""What the rest of the plugin learns from a provisioner goes through its contract. No daemon."""

from __future__ import annotations

from pathlib import Path

from pytest_infranode import convergecache
from pytest_infranode.provisioners.ansible import AnsibleProvisioner
from pytest_infranode.provisioners.base import DeclaresInputs
from pytest_infranode.provisioners.base import DeclaresTools
from pytest_infranode.provisioners.base import has_secrets
from pytest_infranode.provisioners.base import secret_names
from pytest_infranode.provisioners.base import secrets_of
from pytest_infranode.provisioners.base import tool_distributions
from pytest_infranode.provisioners.pyinfra import PyinfraProvisioner
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


def test_nothing_outside_provisioners_names_a_provisioner_in_code() -> None:
    """The converge cache, the session and its parts learn about provisioners from the contract."""
    package = Path(convergecache.__file__).parent
    names = ("ansible", "pyinfra", "puppet", "salt", "chef")
    for module in ("convergecache.py", "converge.py", "factory.py", "bringup.py", "session.py", "keep.py"):
        text = (package / module).read_text()
        code = [line for line in text.splitlines() if not line.lstrip().startswith(("#", "-", ":"))]
        assert not [n for n in names if f'"{n}"' in "\n".join(code)], module
