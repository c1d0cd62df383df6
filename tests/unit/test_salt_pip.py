"""Salt from pip where the platform's packages have none: the script, the options, the message."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners import _innode
from pytest_infranode.provisioners import salt
from pytest_infranode.settings import ProvisionerConfig


def cfg(tmp_path: Path, **options: object) -> ProvisionerConfig:
    (tmp_path / "states").mkdir(exist_ok=True)
    return ProvisionerConfig(name="salt", options={"states": "states", **options}, base_dir=tmp_path)


def test_pip_steps_install_the_sdist_requirements_then_salt_without_deps() -> None:
    steps = salt.pip_steps("3007.1")
    assert "/opt/infranode-salt/bin/pip download -q --no-deps --no-binary :all: salt==3007.1 -d " in steps[1]
    assert steps[4].endswith(
        "-r /tmp/infranode-salt-sdist/salt-3007.1/requirements/node.txt "
        "-r /tmp/infranode-salt-sdist/salt-3007.1/requirements/zeromq.txt"
    )
    assert steps[5].endswith("--no-deps /tmp/infranode-salt-sdist/salt-3007.1.tar.gz")
    assert "timelib" in steps[3]
    assert "'x; rm -rf /'" in salt.pip_steps("x; rm -rf /")[1]


def test_venv_script_installs_venv_only_when_missing() -> None:
    script = _innode.venv_script("/opt/v", "apt", ["echo step"])
    lines = script.splitlines()
    assert lines[0] == "set -e"
    assert "python3 -c 'import ensurepip, venv' 2>/dev/null || {" in lines[1]
    assert "apt-get install -y -q python3-venv" in lines[1]
    assert lines[2] == "[ -x /opt/v/bin/pip ] || python3 -m venv /opt/v"
    assert lines[-1] == "echo step"


@pytest.mark.parametrize("value", [True, False, "packages", "pip"])
def test_install_choices(tmp_path: Path, value: object) -> None:
    salt.validate(cfg(tmp_path, install=value))


@pytest.mark.parametrize("value", ["sometimes", 1, 0])
def test_bad_install_is_a_settings_error(tmp_path: Path, value: object) -> None:
    with pytest.raises(SettingsError, match="`install` must be true, false, packages or pip"):
        salt.validate(cfg(tmp_path, install=value))


@dataclass
class Ran:
    exit_status: int
    stdout: bytes = b""


@dataclass
class Platform:
    name: str = "debian-12"
    package_manager: str = "apt"


@dataclass
class FakeNode:
    """A node without Salt whose packages do not provide it either."""

    platform: Platform = field(default_factory=Platform)
    where: str = "node n (platform debian-12, container c)"
    ran: list[list[str]] = field(default_factory=list)

    def run_argv(self, argv: list[str], **_: Any) -> Ran:
        self.ran.append(argv)
        return Ran(100 if "apt-get" in " ".join(argv) else 1)


def test_missing_salt_with_install_packages_names_the_tool_and_what_was_tried(tmp_path: Path) -> None:
    node = FakeNode()
    out: list[bytes] = []
    result = salt.SaltProvisioner().converge(node, cfg(tmp_path, install="packages"), out.append)  # type: ignore[arg-type]
    assert result.exit_status == 127
    assert "the salt provisioner needs `salt-call` in the node, and it is not there" in result.output
    assert "apt-get install -y -q salt-minion" in result.output
    assert not any("pip" in " ".join(argv) for argv in node.ran)
