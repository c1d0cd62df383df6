"""The option table: every layer of a setting comes from one entry. No daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.options import BY_NOUN
from pytest_infranode.options import OPTIONS
from pytest_infranode.options import YAML_KEYS
from pytest_infranode.options import RawOptions
from pytest_infranode.settings import build_settings


def test_names_follow_the_rule() -> None:
    for option in OPTIONS:
        assert option.flag.startswith("--infra-")
        assert option.ini_key.rstrip("s") == "infra_" + option.flag[len("--infra-") :].replace("-", "_")
        assert not option.help.endswith("."), option.noun
        assert "default" in option.help, option.noun


def test_yaml_keys_are_the_table_plus_the_file_only_ones() -> None:
    assert YAML_KEYS[:2] == ("platforms", "provisioner")
    assert len(set(YAML_KEYS)) == len(YAML_KEYS)
    assert {o.noun for o in OPTIONS if o.yaml} <= set(YAML_KEYS)
    assert not {o.noun for o in OPTIONS if not o.yaml} & set(YAML_KEYS)


def test_raw_options_refuses_an_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="cli_colour"):
        RawOptions(cli_colour="red")
    assert RawOptions(cli_keep=None).cli == {}


def test_read_takes_what_pytest_gives() -> None:
    cli = {"infra_keep": "always", "infra_platform": ["debian-12"]}
    ini = {"infra_pull": "never", "infra_platforms": ["debian-13"]}
    raw = RawOptions.read(cli.get, lambda key: ini.get(key, ""))
    assert raw.cli == {"keep": "always", "platforms": ["debian-12"]}
    assert raw.ini == {"pull": "never", "platforms": ["debian-13"]}


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.parse is not None], ids=lambda o: o.noun)
def test_command_line_beats_ini_beats_yaml_beats_default(tmp_path: Path, option: object) -> None:
    """Each layered option, with a valid value on every layer, takes the highest one."""
    samples = {
        "keep": ("always", "failure", "never"),
        "docker_host": ("unix:///a", "unix:///b", "unix:///c"),
        "boot_timeout": (1.0, "2", 3),
        "converge_timeout": (1.0, "2", 3),
        "command_timeout": (1.0, "2", 3),
        "idempotence": (True, "false", True),
        "reuse": (True, "false", True),
        "cache": ("converge", "off", "converge"),
        "parallel": (1, "2", 3),
        "pull": ("always", "never", "missing"),
        "allow_outside_project": (True, "false", True),
    }
    assert isinstance(option, type(OPTIONS[0]))
    cli, ini, yaml_value = samples[option.noun]
    if option.yaml:
        (tmp_path / "infranode.yaml").write_text(f"{option.noun}: {yaml_value}\n")
    assert option.parse is not None
    expected = [option.parse(v, "x (ini)") for v in (cli, ini, yaml_value)]

    def value(raw: RawOptions) -> object:
        return getattr(build_settings(raw, tmp_path), option.noun)

    assert value(RawOptions(**{f"cli_{option.noun}": cli, f"ini_{option.noun}": ini})) == expected[0]
    assert value(RawOptions(**{f"ini_{option.noun}": ini})) == expected[1]
    assert value(RawOptions()) == (expected[2] if option.yaml else option.default)


def test_parallel_is_not_a_yaml_key(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text("parallel: 3\n")
    with pytest.raises(SettingsError, match="unknown setting 'parallel'"):
        build_settings(RawOptions(), tmp_path)
    assert BY_NOUN["parallel"].yaml_key is None
