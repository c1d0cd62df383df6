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


def test_pip_steps_install_the_pinned_requirements_then_salt_without_deps() -> None:
    steps = salt.pip_steps("3007.1", "apt")
    assert "apt-get install -y -q gcc python3-dev" in steps[0]
    assert "/opt/infranode-salt/bin/pip download -q --no-deps --no-binary :all: salt==3007.1 -d " in steps[2]
    text = "\n".join(steps)
    assert "requirements/static/pkg/py$py/linux.txt" in text
    assert (
        text.index("py$py/linux.txt") < text.index("py$py/linux.lock") < text.index("requirements/base.txt")
    )
    assert 'pip install --progress-bar off -r "$reqs"' in text
    assert steps[-2].endswith("--no-deps /tmp/infranode-salt-sdist/salt-3007.1.tar.gz")
    assert "'x; rm -rf /'" in salt.pip_steps("x; rm -rf /")[2]
    assert "dnf install -y gcc python3-devel" in salt.pip_steps("3007.1", "dnf")[0]


def test_pip_env_passes_the_runners_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    copied: list[tuple[str, dict[str, tuple[bytes, int]]]] = []

    class FakeNode:
        def put_files(self, dest: str, files: dict[str, tuple[bytes, int]]) -> None:
            copied.append((dest, files))

    env = _innode.pip_env(FakeNode(), {"REQUESTS_CA_BUNDLE": str(bundle)})  # type: ignore[arg-type]
    assert env == {"PIP_CERT": _innode.PIP_CA_IN_NODE}
    assert copied[0][1]["ca.pem"][0] == bundle.read_bytes()
    assert _innode.pip_env(FakeNode(), {}) == {}  # type: ignore[arg-type]


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


@dataclass
class NodeWithoutPyPI(FakeNode):
    """A node whose pip cannot find one of Salt's requirements."""

    def put_files(self, dest: str, files: dict[str, tuple[bytes, int]]) -> None:
        pass

    def run_argv(self, argv: list[str], **kwargs: Any) -> Ran:
        self.ran.append(argv)
        if "pip install" in " ".join(argv):
            kwargs["on_output"](
                b"Collecting certifi>=2026.10.23\n"
                b"ERROR: Could not find a version that satisfies the requirement certifi>=2026.10.23\n"
                b"ERROR: No matching distribution found for certifi>=2026.10.23\n"
            )
            return Ran(1)
        return Ran(1)


def test_a_failed_pip_install_gives_pips_own_words_as_the_reason(tmp_path: Path) -> None:
    out: list[bytes] = []
    result = salt.SaltProvisioner().converge(NodeWithoutPyPI(), cfg(tmp_path, install="pip"), out.append)  # type: ignore[arg-type]
    assert result.exit_status == 1
    assert result.reason == (
        f"pip could not install Salt {salt.PIP_VERSION}: pip said: No matching distribution found for "
        "certifi>=2026.10.23"
    )
    assert b"No matching distribution found" in b"".join(out)  # the log has pip's output
    assert result.output.endswith(
        "(exit status 1): pip said: No matching distribution found for certifi>=2026.10.23\n"
        "  where: node n (platform debian-12, container c)\n"
        "  fix:   check that the node reaches PyPI (PIP_INDEX_URL and PIP_CERT on the runner are passed on), "
        "or set `version:` to a Salt release that installs on this platform\n"
    )
