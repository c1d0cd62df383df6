from __future__ import annotations

import dataclasses

import pytest

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.errors import UnknownPlatform
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.platforms import SYSTEMD_TMPFS
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.platforms import split_names


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("debian-11", "debian:11"),
        ("debian-12", "debian:12"),
        ("debian-13", "debian:13"),
        ("ubuntu-20.04", "ubuntu:20.04"),
        ("ubuntu-22.04", "ubuntu:22.04"),
        ("ubuntu-24.04", "ubuntu:24.04"),
    ],
)
def test_builtin_debian_family(name: str, image: str) -> None:
    platform = Catalog().get(name)
    assert platform.name == name
    assert platform.image == image
    assert platform.family == "debian"
    assert platform.package_manager == "apt"
    assert platform.init == "systemd"
    assert platform.command == ("/sbin/init",)
    assert dict(platform.tmpfs) == dict(SYSTEMD_TMPFS)
    assert "SYS_ADMIN" in platform.cap_add
    assert any("apt-get install" in step and "systemd" in step for step in platform.prepare)


def test_builtin_names_are_unique() -> None:
    names = [p.name for p in BUILTIN_PLATFORMS]
    aliases = [a for p in BUILTIN_PLATFORMS for a in p.aliases]
    assert len(names) == len(set(names))
    assert len(aliases) == len(set(aliases))
    assert not set(names) & set(aliases)
    assert len(Catalog()) == len(BUILTIN_PLATFORMS)
    assert Catalog().names() == names


def test_alpine_runs_openrc() -> None:
    platform = Catalog().get("alpine-3.22")
    assert platform.init == "openrc"
    assert platform.package_manager == "apk"
    assert platform.cap_add == ()


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("debian-bookworm", "debian-12"),
        ("debian-trixie", "debian-13"),
        ("ubuntu-noble", "ubuntu-24.04"),
    ],
)
def test_alias_lookup(alias: str, name: str) -> None:
    assert Catalog().get(alias).name == name


def test_lookup_strips_whitespace() -> None:
    assert Catalog().get("  debian-12 ").name == "debian-12"


def test_unknown_platform_suggests_closest() -> None:
    catalog = Catalog()
    with pytest.raises(UnknownPlatform) as excinfo:
        catalog.get("debain-12", where="infranode.yaml:3 (platforms)")
    err = excinfo.value
    assert isinstance(err, SettingsError)
    assert err.name == "debain-12"
    assert err.suggestions[0] == "debian-12"
    assert err.known == catalog.names()
    assert err.where == "infranode.yaml:3 (platforms)"
    text = str(err)
    assert text.splitlines()[0] == "unknown platform 'debain-12'"
    assert "  where: infranode.yaml:3 (platforms)" in text
    assert "did you mean 'debian-12'?" in text
    assert "Known platforms: " + ", ".join(catalog.names()) in text


def test_unknown_platform_without_close_match() -> None:
    with pytest.raises(UnknownPlatform) as excinfo:
        Catalog().get("zzzzzzzz")
    assert excinfo.value.suggestions == []
    assert "did you mean" not in str(excinfo.value)
    assert excinfo.value.where == "--infra-platform"
    assert "Known platforms: debian-11, " in str(excinfo.value)


def test_select_keeps_order_and_drops_duplicates() -> None:
    chosen = Catalog().select(["ubuntu-24.04", "debian-12", "debian-bookworm", "ubuntu-24.04", "debian-11"])
    assert [p.name for p in chosen] == ["ubuntu-24.04", "debian-12", "debian-11"]


def test_select_reports_where() -> None:
    with pytest.raises(UnknownPlatform) as excinfo:
        Catalog().select(["debian-12", "nope-1"], where="infra_platforms (ini)")
    assert excinfo.value.name == "nope-1"
    assert excinfo.value.where == "infra_platforms (ini)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a, b", ["a", "b"]),
        (["a,b", "c"], ["a", "b", "c"]),
        ("debian-12 debian-13,,ubuntu-24.04", ["debian-12", "debian-13", "ubuntu-24.04"]),
        ("", []),
        ([], []),
    ],
)
def test_split_names(value: str | list[str], expected: list[str]) -> None:
    assert split_names(value) == expected


def _custom(name: str = "custom-1", *aliases: str) -> Platform:
    return Platform(
        name=name, image="example/custom:1", family="debian", package_manager="apt", aliases=aliases
    )


def test_add_platform() -> None:
    catalog = Catalog()
    catalog.add(_custom("custom-1", "my-alias"), source="plugin foo")
    assert catalog.get("custom-1").image == "example/custom:1"
    assert catalog.get("my-alias").name == "custom-1"
    assert catalog.names()[-1] == "custom-1"


def test_add_duplicate_raises_plugin_error() -> None:
    catalog = Catalog()
    with pytest.raises(PluginError) as excinfo:
        catalog.add(_custom("debian-12"), source="plugin foo")
    assert "'debian-12' from plugin foo is already taken" in str(excinfo.value)
    assert catalog.get("debian-12").image == "debian:12"


def test_add_name_taken_by_alias_raises() -> None:
    with pytest.raises(PluginError):
        Catalog().add(_custom("debian-bookworm"))


def test_add_replace_overrides() -> None:
    catalog = Catalog()
    mirror = dataclasses.replace(catalog.get("debian-12"), image="registry.local/debian:12")
    catalog.add(mirror, source="infranode.yaml", replace=True)
    assert catalog.get("debian-12").image == "registry.local/debian:12"
    assert catalog.get("debian-bookworm").image == "registry.local/debian:12"
    assert len(catalog) == len(BUILTIN_PLATFORMS)


def test_empty_catalog() -> None:
    catalog = Catalog(())
    assert len(catalog) == 0
    assert list(catalog) == []
    with pytest.raises(UnknownPlatform):
        catalog.get("debian-12")


def test_add_alias_clash_raises() -> None:
    catalog = Catalog()
    with pytest.raises(PluginError):
        catalog.add(_custom("custom-1", "debian-bookworm"), source="plugin foo")
