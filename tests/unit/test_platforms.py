from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.errors import UnknownPlatform
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.platforms import PACKAGE_MANAGERS
from pytest_infranode.platforms import SYSTEMD_TMPFS
from pytest_infranode.platforms import Bootstrap
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.platforms import PlatformDefinition
from pytest_infranode.platforms import build_catalog
from pytest_infranode.platforms import check_definition
from pytest_infranode.platforms import install_command
from pytest_infranode.platforms import split_names
from pytest_infranode.provisioners import _innode as innode
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings


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


def test_apt_recipes_keep_the_package_index() -> None:
    """The prepared image keeps /var/lib/apt/lists, so a converge's apt-get update is cheap."""
    for step in (*Catalog().get("debian-12").prepare, install_command("apt", ["curl"])):
        assert "/var/lib/apt/lists" not in step
    assert "apt-get clean" in Catalog().get("ubuntu-24.04").prepare


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


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["debian-*"], ["debian-11", "debian-12", "debian-13"]),
        (["ubuntu-2?.04"], ["ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04"]),
        (["family:alpine"], ["alpine-3.20", "alpine-3.21", "alpine-3.22"]),
        (["debian-12", "debian-*"], ["debian-12", "debian-11", "debian-13"]),
        (["rocky-*"], ["rockylinux-8", "rockylinux-9"]),
        (["family:suse", "arch"], ["opensuse-leap-15.6", "archlinux"]),
    ],
)
def test_select_globs_and_families(words: list[str], expected: list[str]) -> None:
    assert [p.name for p in Catalog().select(words)] == expected


def test_family_selects_every_member() -> None:
    rhel = Catalog().select(["family:rhel"])
    assert {p.family for p in rhel} == {"rhel"}
    assert len(rhel) == 6


def test_glob_matching_nothing_is_an_error() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Catalog().select(["solaris-*"], where="infranode.yaml:2 (platforms)")
    text = str(excinfo.value)
    assert text.splitlines()[0] == "no platform matches 'solaris-*'"
    assert "where: infranode.yaml:2 (platforms)" in text
    assert "Known platforms: debian-11" in text


def test_unknown_family_suggests() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Catalog().select(["family:rehl"])
    assert "no platform is in family 'rehl'" in str(excinfo.value)
    assert "did you mean 'family:rhel'?" in str(excinfo.value)


def test_every_builtin_has_a_recipe_and_aliases_are_listed() -> None:
    catalog = Catalog()
    for p in catalog:
        assert p.prepare, p.name
        assert p.command == ("/sbin/init",), p.name
        assert p.source == "built-in"
        assert not p.privileged
        for alias in p.aliases:
            assert catalog.get(alias) is p
    assert catalog.get("centos-9").name == "centos-stream-9"
    assert catalog.get("al2023").name == "amazonlinux-2023"


@pytest.mark.parametrize(
    ("name", "suite", "mirror"),
    [
        ("debian-11", "bullseye", "http://deb.debian.org/debian"),
        ("debian-12", "bookworm", "http://deb.debian.org/debian"),
        ("debian-13", "trixie", "http://deb.debian.org/debian"),
        ("ubuntu-22.04", "jammy", "http://archive.ubuntu.com/ubuntu"),
        ("ubuntu-24.04", "noble", "http://archive.ubuntu.com/ubuntu"),
    ],
)
def test_debian_family_can_be_bootstrapped(name: str, suite: str, mirror: str) -> None:
    bootstrap = Catalog().get(name).bootstrap
    assert bootstrap is not None
    assert (bootstrap.suite, bootstrap.mirror, bootstrap.variant) == (suite, mirror, "minbase")


def test_only_apt_platforms_bootstrap() -> None:
    assert all((p.bootstrap is not None) == (p.package_manager == "apt") for p in Catalog())


@pytest.mark.parametrize(
    ("pm", "expected"),
    [
        ("apt", "apt-get install -y --no-install-recommends curl 'a b'"),
        ("dnf", "dnf install -y curl 'a b'"),
        ("zypper", "zypper --non-interactive install curl 'a b'"),
        ("pacman", "pacman -Sy --noconfirm curl 'a b'"),
        ("apk", "apk add --no-cache curl 'a b'"),
    ],
)
def test_install_command_quotes(pm: str, expected: str) -> None:
    assert expected in install_command(pm, ["curl", "a b"])


def test_install_command_unknown_manager() -> None:
    with pytest.raises(ValueError, match="no install recipe"):
        install_command("portage", ["x"])


@pytest.mark.parametrize("pm", list(PACKAGE_MANAGERS))
def test_the_image_and_the_node_install_with_the_one_command_of_each_manager(pm: str) -> None:
    """Each manager's install command is declared once; the prepared image's and the in-node
    provisioners' commands are both made from it."""
    declared = PACKAGE_MANAGERS[pm].install
    assert f"{declared} " in install_command(pm, ["curl"])
    assert f"{declared} " in str(innode.install_command(pm, ["curl"]))
    assert str(innode.install_command(pm, ["curl", "a b"])).endswith(" curl 'a b'")


def test_the_node_install_keeps_what_a_converge_may_want() -> None:
    """Unlike the image's, the node's install is quiet and keeps recommended packages and caches."""
    assert innode.install_command("apt", ["puppet-agent"]) == (
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q puppet-agent"
    )
    assert install_command("apt", ["curl"]) == (
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl"
        " && apt-get clean"
    )
    assert innode.install_command("apk", ["x"]) == "apk add x"
    assert innode.install_command("dnf", ["x"]) == "dnf install -y x"
    assert innode.install_command("portage", ["x"]) is None


def _defn(name: str, body: dict[str, object], base_dir: str = ".") -> PlatformDefinition:
    where = {"": f"infranode.yaml:3 (platform_definitions.{name})"}
    where.update({k: f"infranode.yaml:4 (platform_definitions.{name}.{k})" for k in body})
    return PlatformDefinition(name=name, body=body, where=where, base_dir=base_dir)


def test_override_a_builtin_key_by_key() -> None:
    catalog = Catalog()
    platform = catalog.define(
        _defn(
            "debian-12",
            {
                "image": "registry.local/debian:12",
                "packages": ["curl"],
                "env": {"LANG": "C.UTF-8"},
                "capabilities": ["CAP_SYS_ADMIN", "net_admin"],
                "tmpfs": {"/run": "rw,exec"},
                "command": "/lib/systemd/systemd --log-level=debug",
            },
        )
    )
    assert catalog.get("debian-bookworm") is platform
    assert platform.image == "registry.local/debian:12"
    assert platform.packages == ("curl",)
    assert platform.env == {"LANG": "C.UTF-8"}
    assert platform.cap_add == ("SYS_ADMIN", "NET_ADMIN")
    assert platform.tmpfs == {"/run": "rw,exec"}
    assert platform.command == ("/lib/systemd/systemd", "--log-level=debug")
    assert platform.prepare == catalog.get("debian-13").prepare
    assert platform.source == "infranode.yaml:3 (platform_definitions.debian-12)"
    assert len(catalog) == len(BUILTIN_PLATFORMS)


def test_new_platform_from_a_base() -> None:
    catalog = Catalog()
    platform = catalog.define(
        _defn("app-12", {"base": "debian-12", "packages": ["nginx"], "privileged": True})
    )
    assert platform.image == "debian:12"
    assert platform.aliases == ()
    assert platform.privileged is True
    assert catalog.get("app-12") is platform
    assert catalog.get("debian-12").packages == ()


def test_new_platform_from_an_image() -> None:
    platform = Catalog().define(_defn("corp-os", {"image": "corp/os:7", "package_manager": "dnf"}))
    assert (platform.family, platform.init, platform.command) == ("rhel", "systemd", ("/sbin/init",))
    assert "SYS_ADMIN" in platform.cap_add
    assert any("dnf install" in step for step in platform.prepare)


def test_new_platform_from_a_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    platform = Catalog().define(_defn("mine", {"dockerfile": "Dockerfile", "init": "none"}, str(tmp_path)))
    assert platform.dockerfile == str(tmp_path / "Dockerfile")
    assert platform.image == "infranode-base/mine:latest"
    assert platform.command == ()
    assert platform.prepare == ()


def test_new_platform_bootstrapped() -> None:
    platform = Catalog().define(
        _defn("sid", {"bootstrap": {"suite": "sid", "mirror": "http://mirror.local/debian"}})
    )
    assert platform.bootstrap == Bootstrap("sid", "http://mirror.local/debian")
    override = Catalog().define(_defn("debian-12", {"bootstrap": {"mirror": "http://m/debian"}}))
    assert override.bootstrap == Bootstrap("bookworm", "http://m/debian")


@pytest.mark.parametrize(
    ("name", "body", "message", "key"),
    [
        ("new-1", {"packages": ["x"]}, "is new and says nothing about its image", ""),
        ("debian-12", {"imgae": "x"}, "unknown setting 'imgae'", "imgae"),
        ("debian-12", {"packages": "a b"}, None, None),
        (
            "debian-12",
            {"packages": {"a": 1}},
            "`packages` of platform 'debian-12' must be a list",
            "packages",
        ),
        ("debian-12", {"env": ["A=1"]}, "`env` of platform 'debian-12' must be a mapping", "env"),
        ("debian-12", {"init": "upstart"}, "must be systemd, openrc or none", "init"),
        ("debian-12", {"package_manager": "portage"}, "unknown package manager 'portage'", "package_manager"),
        (
            "debian-12",
            {"privileged": "yes"},
            "`privileged` of platform 'debian-12' must be true",
            "privileged",
        ),
        (
            "debian-12",
            {"dockerfile": "nope/Dockerfile"},
            "the Dockerfile of platform 'debian-12'",
            "dockerfile",
        ),
        ("debian-12", {"base": "debain-12"}, "unknown platform 'debain-12'", "base"),
        ("debian-12", {"bootstrap": {"suit": "x"}}, "unknown key 'suit' in `bootstrap`", "bootstrap"),
        ("Bad Name", {"image": "x"}, "platform name 'Bad Name' is not allowed", ""),
    ],
)
def test_definition_errors_name_file_and_line(
    name: str, body: dict[str, object], message: str | None, key: str | None
) -> None:
    defn = _defn(name, body)
    if message is None:
        Catalog().define(defn)
        return
    checks_alone = "unknown setting" in message or "not allowed" in message
    apply = check_definition if checks_alone else Catalog().define
    with pytest.raises(SettingsError) as excinfo:
        apply(defn)
    assert message in str(excinfo.value)
    assert excinfo.value.where == defn.at(key or "")
    assert "infranode.yaml:" in excinfo.value.where


def test_check_definition_accepts_a_valid_entry() -> None:
    check_definition(_defn("app", {"base": "debian-12", "packages": ["curl"]}))


def test_platform_definitions_from_infranode_yaml(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text(
        "platforms: [app-12]\n"
        "registry_mirror: mirror.gcr.io/\n"
        "platform_definitions:\n"
        "  debian-12:\n"
        "    packages: [curl]\n"
        "  app-12:\n"
        "    base: debian-12\n"
        "    env: {APP: '1'}\n"
    )
    settings = build_settings(RawOptions(), tmp_path)
    assert settings.registry_mirror == "mirror.gcr.io"
    assert settings.pull == "missing"
    assert [d.name for d in settings.platform_definitions] == ["debian-12", "app-12"]
    catalog = build_catalog([], settings.platform_definitions)
    assert catalog.get("debian-12").packages == ("curl",)
    app = catalog.get("app-12")
    assert app.packages == ("curl",)  # based on the overridden debian-12
    assert app.env == {"APP": "1"}
    assert app.source == f"{tmp_path / 'infranode.yaml'}:6 (platform_definitions.app-12)"


@pytest.mark.parametrize(
    ("yaml_text", "message", "line"),
    [
        ("platform_definitions:\n  debian-12:\n    pakages: [x]\n", "unknown setting 'pakages'", 3),
        ("platform_definitions: [debian-12]\n", "`platform_definitions` must be a mapping", 1),
        ("platform_definitions:\n  x-1:\n    env: [a]\n", "`env` of platform 'x-1' must be a mapping", 3),
        ("pull: sometimes\n", "pull must be one of missing, always, never", 1),
        ("registry_mirror: https://mirror\n", "`registry_mirror` must be a registry host", 1),
    ],
)
def test_platform_settings_errors_name_the_line(
    tmp_path: Path, yaml_text: str, message: str, line: int
) -> None:
    (tmp_path / "infranode.yaml").write_text(yaml_text)
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert message in str(excinfo.value)
    assert f"infranode.yaml:{line}" in excinfo.value.where


def test_definition_with_unknown_base_fails_when_the_catalog_is_built(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text("platform_definitions:\n  app:\n    base: debain-12\n")
    settings = build_settings(RawOptions(), tmp_path)
    with pytest.raises(UnknownPlatform) as excinfo:
        build_catalog([], settings.platform_definitions)
    assert "infranode.yaml:3" in excinfo.value.where
    assert "did you mean 'debian-12'?" in str(excinfo.value)
