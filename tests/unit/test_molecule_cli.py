"""`infranode import molecule [scenario]`: what it writes, what it refuses, what it prints. No daemon."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pytest_infranode.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"


@pytest.fixture
def hello(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the hello_service role, as the current folder."""
    role = tmp_path / "hello_service"
    shutil.copytree(FIXTURES / "hello_service", role)
    monkeypatch.chdir(role)
    return role


def test_import_writes_infranode_yaml_next_to_molecule_yml(
    hello: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "molecule"]) == 0
    out = capsys.readouterr().out
    written = hello / "molecule" / "default" / "infranode.yaml"
    data = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert data["nodes"] == {"instance": {"env": {"HELLO_ENV": "from-molecule"}}}
    assert data["provisioner"]["idempotence_skip_tags"] == ["molecule-idempotence-notest"]
    cfg = hello / "molecule" / "default" / "infranode-ansible.cfg"
    assert "gathering = smart" in cfg.read_text(encoding="utf-8")
    lines = out.splitlines()
    assert lines[:2] == [
        "wrote molecule/default/infranode.yaml",
        "wrote molecule/default/infranode-ansible.cfg",
    ]
    assert "carried over differently (1):" in lines
    assert "not supported" not in out
    assert "platform instance: privileged: true: the node runs with the plugin's least-privilege" in out
    assert lines[-2:] == [
        "run the specs with:",
        "  pytest --rootdir=molecule/default molecule/default/tests -v",
    ]


def test_import_refuses_to_overwrite_without_force(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = hello / "molecule" / "default" / "infranode.yaml"
    target.write_text("# mine\n", encoding="utf-8")
    assert main(["import", "molecule", "default"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("infranode: infranode.yaml exists already; not overwritten\n")
    assert f"where: {target}" in err
    assert "--force" in err
    assert "Traceback" not in err
    assert target.read_text(encoding="utf-8") == "# mine\n"
    assert not (hello / "molecule" / "default" / "infranode-ansible.cfg").exists()  # nothing written
    assert main(["import", "molecule", "default", "--force"]) == 0
    assert target.read_text(encoding="utf-8").startswith("# Written by `infranode import molecule default`")


def test_import_prints_the_unsupported_list(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "molecule", "lifecycle"]) == 0
    out = capsys.readouterr().out
    assert "not supported (1), left out of infranode.yaml:" in out
    assert "role infranode_tests.hello_service" in out
    unsupported = out.split("not supported (1)")[1]
    assert "side_effect" not in unsupported  # side_effect.yml and verify.yml are run now
    assert "verify.yml is not run" not in unsupported
    # verifier: ansible — the verify playbook is what pytest runs, a test per platform
    assert out.rstrip().endswith(
        "run the specs with:\n  pytest --rootdir=molecule/lifecycle molecule/lifecycle/verify.yml"
    )
    written = (hello / "molecule" / "lifecycle" / "infranode.yaml").read_text(encoding="utf-8")
    assert "side_effect: side_effect.yml\n" in written
    assert "verify: verify.yml\n" in written


def test_print_writes_nothing(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "molecule", "--print"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["platforms"] == ["debian-12"]
    assert not (hello / "molecule" / "default" / "infranode.yaml").exists()


def test_the_role_is_found_from_below_and_with_role(
    hello: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(hello / "molecule" / "default" / "tests")
    assert main(["import", "molecule", "--print"]) == 0
    monkeypatch.chdir(tmp_path)
    assert (
        main(["import", "molecule", "--role", str(hello), "--output", str(tmp_path / "infranode.yaml")]) == 0
    )
    out = capsys.readouterr().out
    data = yaml.safe_load((tmp_path / "infranode.yaml").read_text(encoding="utf-8"))
    assert data["provisioner"]["playbook"] == "hello_service/molecule/default/converge.yml"
    assert data["provisioner"]["roles_path"] == "."
    assert "infranode.yaml's folder: ansible-playbook runs in the folder of infranode.yaml" in out


def test_the_scenario_is_default_or_the_only_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    role = tmp_path / "r"
    shutil.copytree(FIXTURES / "hello_service", role)
    shutil.rmtree(role / "molecule" / "default")
    monkeypatch.chdir(role)
    assert main(["import", "molecule", "--print"]) == 0  # lifecycle, the only one
    assert "# Written by `infranode import molecule lifecycle`" in capsys.readouterr().out
    shutil.copytree(role / "molecule" / "lifecycle", role / "molecule" / "other")
    assert main(["import", "molecule"]) == 1
    err = capsys.readouterr().err
    assert "which scenario?" in err
    assert "name one: `infranode import molecule lifecycle` (scenarios: lifecycle, other)" in err


def test_a_broken_molecule_yml_is_named_without_a_traceback(
    hello: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = hello / "molecule" / "default" / "molecule.yml"
    file.write_text(file.read_text(encoding="utf-8").replace("    image: debian:12\n", "    image: [1, 2]\n"))
    assert main(["import", "molecule"]) == 1
    err = capsys.readouterr().err
    assert "`platforms.0.image` must be a string, not list" in err
    assert f"where: {file}:9" in err
    assert "fix:   write `image: debian:12`" in err
    assert "Traceback" not in err


def test_no_role_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["import", "molecule"]) == 1
    assert "no Molecule scenario here" in capsys.readouterr().err


def test_allow_privileged(hello: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "molecule", "--allow-privileged", "--print"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["platform_definitions"] == {"debian-12": {"privileged": True}}
