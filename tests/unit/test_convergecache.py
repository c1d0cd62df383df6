"""The converge cache's key: what it covers, what it says on a miss, which images are stale."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_infranode import convergecache
from pytest_infranode import labels
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.errors import SettingsError
from pytest_infranode.node import Node
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.shell import ShellProvisioner
from pytest_infranode.settings import NodeConfig
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings

PLATFORM = Platform(name="debian-12", image="debian:12", family="debian", package_manager="apt")


def _key(
    tmp_path: Path, options: dict[str, object], platform: Platform = PLATFORM, recipe: str = "r1"
) -> convergecache.ConvergeKey:
    return convergecache.converge_key(
        platform=platform,
        recipe=recipe,
        prepared_id="sha256:p",
        provisioner=ShellProvisioner(),
        config=ProvisionerConfig(options=options, base_dir=tmp_path),
        node=NodeConfig(name=""),
    )


def test_key_changes_with_each_input(tmp_path: Path) -> None:
    (tmp_path / "converge.sh").write_text("echo one\n")
    base = _key(tmp_path, {"script": "converge.sh"})
    assert base == _key(tmp_path, {"script": "converge.sh"})
    assert "file converge.sh" in base.parts
    assert _key(tmp_path, {"script": "converge.sh", "env": {"A": "1"}}).key != base.key
    assert _key(tmp_path, {"script": "converge.sh"}, recipe="r2").key != base.key
    other = dataclasses.replace(PLATFORM, env={"X": "1"})
    assert _key(tmp_path, {"script": "converge.sh"}, platform=other).key != base.key
    (tmp_path / "converge.sh").write_text("echo two\n")
    changed = _key(tmp_path, {"script": "converge.sh"})
    assert changed.key != base.key
    assert "file converge.sh" in convergecache.explain_miss(changed, base.parts)
    assert "provisioner options" not in convergecache.explain_miss(changed, base.parts)


def test_directory_inputs_are_hashed_by_content(tmp_path: Path) -> None:
    roles = tmp_path / "roles" / "web"
    roles.mkdir(parents=True)
    (roles / "main.yml").write_text("a\n")
    first = _key(tmp_path, {"roles_path": "roles", "inline": ["echo roles"]})
    (roles / "main.yml").write_text("b\n")
    assert _key(tmp_path, {"roles_path": "roles", "inline": ["echo roles"]}).key != first.key


def test_only_existing_paths_and_never_the_project_itself(tmp_path: Path) -> None:
    config = ProvisionerConfig(
        options={"inline": ["apt-get install -y x", ".", "..", "/etc"]}, base_dir=tmp_path
    )
    assert convergecache.input_paths(ShellProvisioner(), config) == []


def test_declared_inputs_replace_the_guess(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")

    class Declares:
        name = "declares"

        def check(self, config: ProvisionerConfig) -> None:
            return None

        def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
            return ConvergeResult(0)

        def inputs(self, config: ProvisionerConfig) -> list[Path]:
            return [Path("a.txt")]

    config = ProvisionerConfig(options={"script": "nothing-here"}, base_dir=tmp_path)
    assert convergecache.input_paths(Declares(), config) == [(tmp_path / "a.txt").resolve()]


def test_never_cached_with_secrets_or_idempotence() -> None:
    assert "secret_env" in (
        convergecache.uncacheable(ProvisionerConfig(options={"secret_env": ["T"]}), False) or ""
    )
    assert convergecache.uncacheable(ProvisionerConfig(), True)
    assert convergecache.uncacheable(ProvisionerConfig(), False) is None


def test_first_miss_names_the_key(tmp_path: Path) -> None:
    key = _key(tmp_path, {"inline": ["true"]})
    assert convergecache.explain_miss(key, None) == f"no image with key {key.key}"


def _image(id_: str, scope: str, created: int, recipe: str) -> ImageInfo:
    return ImageInfo(
        id=id_,
        repo_tags=(),
        labels={
            labels.CONVERGE_SCOPE: scope,
            labels.PLATFORM: scope.split("/")[0],
            convergecache.RECIPE_OF: recipe,
        },
        size=None,
        created=created,
    )


def test_stale_converged_images() -> None:
    images = [
        _image("old", "debian-12//shell", 1, "r1"),
        _image("new", "debian-12//shell", 2, "r1"),
        _image("other-recipe", "debian-13//shell", 1, "r0"),
        _image("unknown-platform", "gone//shell", 1, "r9"),
    ]
    stale = convergecache.stale_converged(images, {"debian-12": "r1", "debian-13": "r1"})
    assert [i.id for i in stale] == ["old", "other-recipe"]


def test_settings(tmp_path: Path) -> None:
    assert build_settings(RawOptions(), tmp_path).cache == "off"
    assert build_settings(RawOptions(cli_cache="converge"), tmp_path).cache == "converge"
    assert build_settings(RawOptions(ini_cache="converge"), tmp_path).cache == "converge"
    (tmp_path / "infranode.yaml").write_text("cache: converge\n")
    assert build_settings(RawOptions(), tmp_path).cache == "converge"
    assert build_settings(RawOptions(cli_cache="off"), tmp_path).cache == "off"
    with pytest.raises(SettingsError, match="cache must be one of"):
        build_settings(RawOptions(cli_cache="everything"), tmp_path)
    assert build_settings(RawOptions(cli_parallel=3), tmp_path).parallel == 3
    assert build_settings(RawOptions(ini_parallel="2"), tmp_path).parallel == 2
    with pytest.raises(SettingsError, match="at least 1"):
        build_settings(RawOptions(cli_parallel=0), tmp_path)


def test_sysctls_change_the_key_and_keys_without_them_stay(tmp_path: Path) -> None:
    def key(node: NodeConfig) -> str:
        return convergecache.converge_key(
            platform=PLATFORM,
            recipe="r1",
            prepared_id="sha256:p",
            provisioner=ShellProvisioner(),
            config=ProvisionerConfig(options={"inline": ["true"]}, base_dir=tmp_path),
            node=node,
        ).parts["node settings"]

    plain = key(NodeConfig(name="web"))
    assert plain == convergecache._h(json.dumps(["web", {}, [], []], sort_keys=True))
    assert key(NodeConfig(name="web", sysctls={"net.ipv4.ip_forward": "1"})) != plain
