"""Files the configuration names are regular files inside the project, unless it allows outside
ones (#20): symlinks that leave the project, absolute paths elsewhere, FIFOs and devices are
refused before any node exists, naming the path and the rule. No daemon."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.projectfiles import FileRule
from pytest_infranode.projectfiles import check_path
from pytest_infranode.projectfiles import walk
from pytest_infranode.provisioners._common import tree_files
from pytest_infranode.provisioners.salt import validate as salt_validate
from pytest_infranode.provisioners.shell import plan
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import Settings
from pytest_infranode.settings import build_settings


def _project(tmp_path: Path, yaml: str) -> tuple[Path, Path]:
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret-hash:19000::::::\n")
    (project / "infranode.yaml").write_text(textwrap.dedent(yaml).lstrip("\n"))
    return project, outside


def _settings(project: Path, **raw: object) -> Settings:
    return build_settings(RawOptions(**raw), project)


SHELL = "provisioner:\n  name: shell\n  script: converge.sh\n"


def test_a_script_symlink_that_leaves_the_project_is_refused(tmp_path: Path) -> None:
    project, outside = _project(tmp_path, SHELL)
    (project / "converge.sh").symlink_to(outside / "shadow")
    settings = _settings(project)
    with pytest.raises(SettingsError) as excinfo:
        plan(settings.provisioner)
    err = excinfo.value
    assert err.what == (
        f"shell provisioner: script 'converge.sh' is outside the project: {project}/converge.sh "
        f"(which leads to {outside}/shadow) is not under {project}"
    )
    assert err.where == f"{project}/infranode.yaml:3 (provisioner.script)"
    assert "copy the file into the project" in err.fix
    assert "set `allow_outside_project: true` in the configuration file" in err.fix


def test_allow_outside_project_lets_the_configuration_name_outside_files(tmp_path: Path) -> None:
    project, outside = _project(tmp_path, SHELL + "allow_outside_project: true\n")
    (project / "converge.sh").symlink_to(outside / "shadow")
    settings = _settings(project)
    assert settings.allow_outside_project is True
    assert plan(settings.provisioner) == ([project / "converge.sh"], [])


def test_the_command_line_can_allow_it_too(tmp_path: Path) -> None:
    project, outside = _project(tmp_path, SHELL)
    (project / "converge.sh").symlink_to(outside / "shadow")
    settings = _settings(project, cli_allow_outside_project=True)
    assert plan(settings.provisioner) == ([project / "converge.sh"], [])


def test_a_symlink_inside_the_project_is_fine(tmp_path: Path) -> None:
    project, _ = _project(tmp_path, SHELL)
    (project / "scripts").mkdir()
    (project / "scripts" / "real.sh").write_text("true\n")
    (project / "converge.sh").symlink_to(project / "scripts" / "real.sh")
    assert plan(_settings(project).provisioner) == ([project / "converge.sh"], [])


def test_a_fifo_is_refused_even_when_outside_files_are_allowed(tmp_path: Path) -> None:
    project, _ = _project(tmp_path, SHELL + "allow_outside_project: true\n")
    os.mkfifo(project / "converge.sh")
    with pytest.raises(SettingsError) as excinfo:
        plan(_settings(project).provisioner)
    assert excinfo.value.what == (
        "shell provisioner: script 'converge.sh' is a FIFO (named pipe), not a regular file: "
        f"{project}/converge.sh"
    )
    assert excinfo.value.fix.startswith("files the configuration names must be regular files")


def test_a_device_is_refused(tmp_path: Path) -> None:
    project, _ = _project(tmp_path, "provisioner:\n  name: shell\n  script: /dev/zero\n")
    rule = FileRule(project, allow_outside=True)
    with pytest.raises(SettingsError) as excinfo:
        check_path(Path("/dev/zero"), rule, what="x", where="here")
    assert excinfo.value.what == "x is a character device, not a regular file: /dev/zero"
    assert excinfo.value.where == "here"
    # and by default, before that, for being outside the project:
    with pytest.raises(SettingsError, match="script '/dev/zero' is outside the project"):
        plan(_settings(project).provisioner)


def test_a_directory_copied_into_the_node_is_walked_at_check_time(tmp_path: Path) -> None:
    project, outside = _project(tmp_path, "provisioner:\n  name: salt\n  states: salt\n")
    states = project / "salt"
    states.mkdir()
    (states / "top.sls").write_text("base: {'*': [web]}\n")
    (states / "web.sls").symlink_to(outside / "shadow")
    with pytest.raises(SettingsError) as excinfo:
        salt_validate(_settings(project).provisioner)
    assert excinfo.value.what == (
        f"salt provisioner: directory 'salt': 'web.sls' is outside the project: {states}/web.sls "
        f"(which leads to {outside}/shadow) is not under {project}"
    )
    assert excinfo.value.where == f"{project}/infranode.yaml:3 (provisioner.states)"


def test_a_symlinked_directory_that_leaves_the_project_is_refused(tmp_path: Path) -> None:
    project, outside = _project(tmp_path, "")
    tree = project / "tree"
    tree.mkdir()
    (tree / "etc").symlink_to(outside)
    with pytest.raises(
        SettingsError, match=r"^d: 'etc' is outside the project: .*/tree/etc \(which leads to"
    ):
        list(walk(tree, FileRule(project), what="d", where="w"))
    assert [p.name for p in walk(tree, FileRule(project, allow_outside=True), what="d", where="w")] == [
        "shadow"
    ]


def test_tree_files_checks_again_when_it_copies(tmp_path: Path) -> None:
    project, outside = _project(tmp_path, "")
    tree = project / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    assert tree_files(tree, "t/", FileRule(project)) == {
        "t/a.txt": (b"a\n", 0o644 & ~0 | (tree / "a.txt").stat().st_mode & 0o777)
    }
    (tree / "leak").symlink_to(outside / "shadow")
    with pytest.raises(SettingsError, match="'leak' is outside the project"):
        tree_files(tree, "t/", FileRule(project))


def _dockerfile_project(tmp_path: Path, dockerfile: str, extra: str = "") -> tuple[Path, Path]:
    return _project(
        tmp_path,
        f"platform_definitions:\n  mine:\n    image: mine/app\n    dockerfile: {dockerfile}\n{extra}",
    )


def test_a_dockerfile_outside_the_project_is_refused_with_its_build_context(tmp_path: Path) -> None:
    project, outside = _dockerfile_project(tmp_path, str(tmp_path / "outside" / "Dockerfile"))
    (outside / "Dockerfile").write_text("FROM debian:12\n")
    with pytest.raises(SettingsError) as excinfo:
        _settings(project, cli_platforms="mine")
    err = excinfo.value
    assert "the Dockerfile of platform 'mine' is outside the project" in err.what
    assert err.where == f"{project}/infranode.yaml:4 (platform_definitions.mine.dockerfile)"
    assert "allow_outside_project: true" in err.fix


def test_a_dockerfile_link_into_the_project_from_outside_still_sends_the_outside_folder(
    tmp_path: Path,
) -> None:
    project, outside = _dockerfile_project(tmp_path, str(tmp_path / "outside" / "Dockerfile"))
    (project / "Dockerfile").write_text("FROM debian:12\n")
    (outside / "Dockerfile").symlink_to(project / "Dockerfile")
    with pytest.raises(SettingsError) as excinfo:
        _settings(project, cli_platforms="mine")
    assert "build context" in excinfo.value.what
    assert f"is in {outside}, outside the project" in excinfo.value.what


def test_a_dockerfile_symlink_that_leaves_the_project_is_refused(tmp_path: Path) -> None:
    project, outside = _dockerfile_project(tmp_path, "Dockerfile")
    (outside / "Dockerfile").write_text("FROM debian:12\n")
    (project / "Dockerfile").symlink_to(outside / "Dockerfile")
    with pytest.raises(SettingsError) as excinfo:
        _settings(project, cli_platforms="mine")
    assert "the Dockerfile of platform 'mine' is outside the project" in excinfo.value.what


def test_a_dockerfile_in_the_project_root_is_fine_and_outside_ones_can_be_allowed(tmp_path: Path) -> None:
    project, outside = _dockerfile_project(tmp_path, "Dockerfile")
    (project / "Dockerfile").write_text("FROM debian:12\n")
    (project / ".venv").mkdir()
    (project / ".venv" / "python").symlink_to(outside / "shadow")  # sent as a link, never read
    assert [p.name for p in _settings(project, cli_platforms="mine").platforms] == ["mine"]
    (tmp_path / "b").mkdir()
    allowed, elsewhere = _dockerfile_project(
        tmp_path / "b", str(tmp_path / "b" / "outside" / "Dockerfile"), "allow_outside_project: true\n"
    )
    (elsewhere / "Dockerfile").write_text("FROM debian:12\n")
    assert [p.name for p in _settings(allowed, cli_platforms="mine").platforms] == ["mine"]
