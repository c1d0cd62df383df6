from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.errors import UnknownPlatform
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.settings import DEFAULT_BOOT_TIMEOUT
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import Settings
from pytest_infranode.settings import build_settings
from pytest_infranode.settings import configured_catalog


def names(settings: Settings) -> tuple[str, ...]:
    return tuple(p.name for p in settings.platforms)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


FULL_YAML = """
platforms: [debian-11, debian-12]
keep: always
boot_timeout: 30
docker_host: tcp://yaml:2375
"""


def test_defaults_without_any_file(tmp_path: Path) -> None:
    settings = build_settings(RawOptions(), tmp_path)
    assert names(settings) == ()
    assert settings.platforms_source == "default"
    assert settings.keep == "never"
    assert settings.boot_timeout == DEFAULT_BOOT_TIMEOUT
    assert settings.docker_host is None
    assert settings.config_file is None
    assert settings.provisioner == ProvisionerConfig(base_dir=tmp_path)
    assert not settings.enabled


def test_enabled() -> None:
    assert not Settings().enabled
    assert Settings(platforms=(Catalog().get("debian-12"),)).enabled


def test_yaml_values(tmp_path: Path) -> None:
    config = write(tmp_path / "infranode.yaml", FULL_YAML)
    settings = build_settings(RawOptions(), tmp_path)
    assert settings.config_file == config
    assert names(settings) == ("debian-11", "debian-12")
    assert settings.platforms_source == f"{config}:1 (platforms)"
    assert settings.keep == "always"
    assert settings.boot_timeout == 30.0
    assert settings.docker_host == "tcp://yaml:2375"
    assert settings.enabled


def test_yml_extension_is_found(tmp_path: Path) -> None:
    config = write(tmp_path / "infranode.yml", "platforms: debian-13\n")
    settings = build_settings(RawOptions(), tmp_path)
    assert settings.config_file == config
    assert names(settings) == ("debian-13",)


def test_ini_beats_yaml(tmp_path: Path) -> None:
    write(tmp_path / "infranode.yaml", FULL_YAML)
    raw = RawOptions(
        ini_platforms=["ubuntu-22.04, ubuntu-24.04"],
        ini_keep="failure",
        ini_boot_timeout="45",
        ini_docker_host="tcp://ini:2375",
    )
    settings = build_settings(raw, tmp_path)
    assert names(settings) == ("ubuntu-22.04", "ubuntu-24.04")
    assert settings.platforms_source == "infra_platforms (ini)"
    assert settings.keep == "failure"
    assert settings.boot_timeout == 45.0
    assert settings.docker_host == "tcp://ini:2375"


def test_cli_beats_ini_and_yaml(tmp_path: Path) -> None:
    write(tmp_path / "infranode.yaml", FULL_YAML)
    raw = RawOptions(
        cli_platforms=["debian-13"],
        ini_platforms=["ubuntu-22.04"],
        cli_keep="never",
        ini_keep="failure",
        cli_boot_timeout=5.0,
        ini_boot_timeout="45",
        cli_docker_host="unix:///cli.sock",
        ini_docker_host="tcp://ini:2375",
    )
    settings = build_settings(raw, tmp_path)
    assert names(settings) == ("debian-13",)
    assert settings.platforms_source == "--infra-platform"
    assert settings.keep == "never"
    assert settings.boot_timeout == 5.0
    assert settings.docker_host == "unix:///cli.sock"


def test_provisioner_shorthand(tmp_path: Path) -> None:
    config = write(tmp_path / "infranode.yaml", "provisioner: shell\n")
    provisioner = build_settings(RawOptions(), tmp_path).provisioner
    assert provisioner.name == "shell"
    assert dict(provisioner.options) == {}
    assert provisioner.base_dir == tmp_path
    assert provisioner.source.path == config


def test_provisioner_mapping(tmp_path: Path) -> None:
    config = write(
        tmp_path / "infranode.yaml",
        """
        platforms: [debian-12]
        provisioner:
          name: shell
          script: converge.sh
          env:
            SITE: demo
        """,
    )
    provisioner = build_settings(RawOptions(), tmp_path).provisioner
    assert provisioner.name == "shell"
    assert dict(provisioner.options) == {"script": "converge.sh", "env": {"SITE": "demo"}}
    assert provisioner.base_dir == tmp_path
    assert provisioner.source.where("provisioner.script") == f"{config}:4 (provisioner.script)"
    assert provisioner.source.where("provisioner.env.SITE") == f"{config}:6 (provisioner.env.SITE)"


def test_provisioner_base_dir_is_the_config_files_directory(tmp_path: Path) -> None:
    sub = tmp_path / "infra"
    sub.mkdir()
    config = write(sub / "nodes.yaml", "provisioner: {name: shell, inline: ['true']}\n")
    settings = build_settings(RawOptions(cli_config="infra/nodes.yaml"), tmp_path)
    assert settings.config_file == config
    assert settings.provisioner.base_dir == sub


def test_provisioner_mapping_without_name(tmp_path: Path) -> None:
    config = write(tmp_path / "infranode.yaml", "keep: never\nprovisioner:\n  script: x.sh\n")
    with pytest.raises(SettingsError, match="the provisioner needs a name") as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert excinfo.value.where == f"{config}:2 (provisioner)"


def test_provisioner_wrong_type(tmp_path: Path) -> None:
    write(tmp_path / "infranode.yaml", "provisioner: [shell]\n")
    with pytest.raises(SettingsError, match="must be a name or a mapping, not list"):
        build_settings(RawOptions(), tmp_path)


def test_pyproject_table(tmp_path: Path) -> None:
    pyproject = write(
        tmp_path / "pyproject.toml",
        """
        [project]
        name = "x"

        [tool.infranode]
        platforms = ["debian-12", "ubuntu-24.04"]
        keep = "failure"
        provisioner = { name = "shell", inline = ["true"] }
        """,
    )
    settings = build_settings(RawOptions(), tmp_path)
    assert settings.config_file == pyproject
    assert names(settings) == ("debian-12", "ubuntu-24.04")
    assert settings.keep == "failure"
    assert settings.provisioner.name == "shell"
    assert dict(settings.provisioner.options) == {"inline": ["true"]}
    assert "[tool.infranode]" in settings.platforms_source


def test_infranode_yaml_beats_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.infranode]\nplatforms = ["debian-11"]\n')
    config = write(tmp_path / "infranode.yaml", "platforms: [debian-13]\n")
    settings = build_settings(RawOptions(), tmp_path)
    assert settings.config_file == config
    assert names(settings) == ("debian-13",)


def test_pyproject_without_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    settings = build_settings(RawOptions(), tmp_path)
    assert names(settings) == ()
    assert settings.keep == "never"


def test_pyproject_unknown_key(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.infranode]\nplatfroms = ["debian-11"]\n')
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert "did you mean 'platforms'?" in str(excinfo.value)
    assert "[tool.infranode]" in excinfo.value.where


def test_pyproject_bad_toml(tmp_path: Path) -> None:
    pyproject = write(tmp_path / "pyproject.toml", "[tool.infranode\n")
    with pytest.raises(SettingsError, match="is not valid TOML") as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert excinfo.value.where == str(pyproject)


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    config = write(
        tmp_path / "infranode.yaml",
        """
        platforms:
          - debian-12
        keep: never: x
        """,
    )
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    err = excinfo.value
    assert err.where == f"{config}:3:12"
    assert "infranode.yaml is not valid YAML: mapping values are not allowed here" in err.what
    assert f"  where: {config}:3:12" in str(err)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    config = write(tmp_path / "infranode.yaml", "- debian-12\n")
    with pytest.raises(SettingsError, match="must be a mapping of settings, not a list") as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert excinfo.value.where == f"{config}:1"


def test_empty_yaml_is_defaults(tmp_path: Path) -> None:
    config = write(tmp_path / "infranode.yaml", "# nothing yet\n")
    settings = build_settings(RawOptions(), tmp_path)
    assert settings.config_file == config
    assert names(settings) == ()


def test_unknown_top_level_key(tmp_path: Path) -> None:
    config = write(
        tmp_path / "infranode.yaml",
        """
        platforms: [debian-12]
        # a comment
        keep: never
        boot_timout: 10
        """,
    )
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    err = excinfo.value
    assert err.what == "unknown setting 'boot_timout'"
    assert err.where == f"{config}:4 (boot_timout)"
    assert err.fix.startswith("did you mean 'boot_timeout'? Known settings: platforms, provisioner")


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (
            "platforms: [debian-12]\nkeep: maybe\n",
            "keep must be one of never, failure, always, not 'maybe'",
            2,
        ),
        ("keep: never\n\nboot_timeout: -1\n", "boot timeout must be a positive number of seconds, not -1", 3),
        ("boot_timeout: soon\n", "boot timeout must be a positive number of seconds, not 'soon'", 1),
        ("keep: never\nplatforms: 3\n", "`platforms` must be a list of platform names", 2),
        ("platforms: [debian-12, 3]\n", "`platforms` must be a list of platform names", 1),
        ("docker_host: 42\n", "`docker_host` must be a string", 1),
    ],
)
def test_wrong_types_in_yaml(tmp_path: Path, text: str, message: str, line: int) -> None:
    config = write(tmp_path / "infranode.yaml", text)
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert excinfo.value.what == message
    assert excinfo.value.where.startswith(f"{config}:{line} (")


def test_wrong_keep_on_command_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(cli_keep="sometimes"), tmp_path)
    assert excinfo.value.where == "--infra-keep"
    assert "--infra-keep=failure" in excinfo.value.fix


@pytest.mark.parametrize("value", [0.0, -3.0])
def test_wrong_boot_timeout_on_command_line(tmp_path: Path, value: float) -> None:
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(cli_boot_timeout=value), tmp_path)
    assert excinfo.value.where == "--infra-boot-timeout"


def test_wrong_boot_timeout_in_ini(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(ini_boot_timeout="ten"), tmp_path)
    assert excinfo.value.where == "infra_boot_timeout (ini)"


def test_missing_config_file(tmp_path: Path) -> None:
    write(tmp_path / "infranode.yaml", "platforms: [debian-12]\n")
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(cli_config="missing.yaml"), tmp_path)
    err = excinfo.value
    assert err.what == "configuration file 'missing.yaml' does not exist"
    assert str(tmp_path / "missing.yaml") in err.where


def test_missing_config_file_from_ini(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'other\.yaml' does not exist"):
        build_settings(RawOptions(ini_config="other.yaml"), tmp_path)


def test_cli_config_beats_ini_config(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "platforms: [debian-11]\n")
    write(tmp_path / "b.yaml", "platforms: [debian-13]\n")
    settings = build_settings(RawOptions(cli_config="a.yaml", ini_config="b.yaml"), tmp_path)
    assert names(settings) == ("debian-11",)


def test_absolute_config_path(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write(elsewhere / "infra.yaml", "keep: failure\n")
    rootdir = tmp_path / "root"
    rootdir.mkdir()
    settings = build_settings(RawOptions(cli_config=str(config)), rootdir)
    assert settings.config_file == config
    assert settings.keep == "failure"
    assert settings.provisioner.base_dir == elsewhere


def test_nan_boot_timeout_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "infranode.yaml", "boot_timeout: .nan\n")
    with pytest.raises(SettingsError):
        build_settings(RawOptions(), tmp_path)


def test_command_timeout_layers_and_checks(tmp_path: Path) -> None:
    assert build_settings(RawOptions(), tmp_path).command_timeout is None
    write(tmp_path / "infranode.yaml", "command_timeout: 30\n")
    assert build_settings(RawOptions(), tmp_path).command_timeout == 30.0
    assert build_settings(RawOptions(ini_command_timeout="12"), tmp_path).command_timeout == 12.0
    assert (
        build_settings(
            RawOptions(cli_command_timeout=5.0, ini_command_timeout="12"), tmp_path
        ).command_timeout
        == 5.0
    )
    write(tmp_path / "infranode.yaml", "command_timeout: never\n")
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert excinfo.value.what == "command timeout must be a positive number of seconds, not 'never'"
    assert excinfo.value.where.endswith("infranode.yaml:1 (command_timeout)")


# Platform names become Platform values here, once.
def test_names_are_chosen_from_the_catalog_once(tmp_path: Path) -> None:
    settings = build_settings(
        RawOptions(cli_platforms=["debian-bookworm, family:rhel", "debian-12"]), tmp_path
    )
    assert all(isinstance(p, Platform) for p in settings.platforms)
    assert settings.platforms[0] == Catalog().get("debian-12")
    assert names(settings)[1:] == tuple(p.name for p in Catalog() if p.family == "rhel")
    assert settings.catalog.get("debian-12") is settings.platforms[0]


def test_an_unknown_name_is_refused_where_it_was_given(tmp_path: Path) -> None:
    write(tmp_path / "infranode.yaml", "platforms: [debain-12]\n")
    with pytest.raises(UnknownPlatform, match="debian-12") as info:
        build_settings(RawOptions(), tmp_path)
    assert "infranode.yaml:1 (platforms)" in info.value.where


def _plugin_platform(name: str = "corp-os") -> Platform:
    return dataclasses.replace(BUILTIN_PLATFORMS[1], name=name, aliases=())


def test_plugins_platforms_are_asked_for_only_when_a_platform_is_given(tmp_path: Path) -> None:
    asked: list[str] = []

    def plugins() -> list[list[Platform] | None]:
        asked.append("asked")
        return [[_plugin_platform()], None]

    assert not build_settings(RawOptions(), tmp_path, plugins).enabled
    assert asked == []
    settings = build_settings(RawOptions(cli_platforms=["corp-os"]), tmp_path, plugins)
    assert names(settings) == ("corp-os",)
    assert asked == ["asked"]


def test_a_plugins_platform_that_the_catalog_refuses(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="already taken"):
        build_settings(RawOptions(cli_platforms=["debian-12"]), tmp_path, lambda: [[BUILTIN_PLATFORMS[1]]])


def test_platform_definitions_join_the_catalog_the_names_are_chosen_from(tmp_path: Path) -> None:
    write(
        tmp_path / "infranode.yaml",
        """
        platforms: [corp-12]
        platform_definitions:
          corp-12: {base: debian-12, packages: [curl]}
        """,
    )
    (platform,) = build_settings(RawOptions(), tmp_path).platforms
    assert (platform.name, platform.packages) == ("corp-12", ("curl",))


def test_the_infranode_command_reads_the_catalog_without_choosing(tmp_path: Path) -> None:
    """`infranode platforms` loads no plugin: a plugin's platform in `platforms:` is not an error."""
    write(
        tmp_path / "infranode.yaml",
        """
        platforms: [from-a-plugin]
        platform_definitions:
          corp-12: {base: debian-12}
        """,
    )
    catalog = configured_catalog(RawOptions(), tmp_path)
    assert "corp-12" in catalog.names()
    assert len(catalog) == len(BUILTIN_PLATFORMS) + 1


def test_non_utf8_yaml_names_the_file_the_byte_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "infranode.yaml"
    config.write_bytes(b"platforms: [debian-12]\n# caf\xe9\n")
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    err = excinfo.value
    assert err.what == (
        "configuration file infranode.yaml is not UTF-8 text: byte 0xe9 at line 2, column 6 cannot be decoded"
    )
    assert err.where == f"{config}:2:6"
    assert err.fix.startswith("save the file as UTF-8")


def test_non_utf8_pyproject_is_refused_the_same_way(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(b'[tool.infranode]\nplatforms = ["\xff"]\n')
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    assert excinfo.value.what.startswith(
        "configuration file pyproject.toml is not UTF-8 text: byte 0xff at line 2"
    )
    assert excinfo.value.where == f"{pyproject}:2:15"


def test_unreadable_config_names_the_file_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "infranode.yaml", "platforms: [debian-12]\n")
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == config:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    # The tests run as root too, where chmod 000 does not stop a read: the OS's refusal is simulated.
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(SettingsError) as excinfo:
        build_settings(RawOptions(), tmp_path)
    err = excinfo.value
    assert err.what == "configuration file infranode.yaml cannot be read: Permission denied"
    assert err.where == str(config)
    assert f"`chmod a+r {config}`" in err.fix


def test_config_that_is_a_directory_cannot_be_read(tmp_path: Path) -> None:
    from pytest_infranode.settings import read_config_text

    with pytest.raises(SettingsError, match="cannot be read: Is a directory"):
        read_config_text(tmp_path)
