"""The pull policy: --infra-pull > infra_pull (ini) > pull: (YAML) > missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings


def _yaml(tmp_path: Path, text: str) -> None:
    (tmp_path / "infranode.yaml").write_text(text, encoding="utf-8")


def test_default_is_missing(tmp_path: Path) -> None:
    assert build_settings(RawOptions(), tmp_path).pull == "missing"


def test_yaml_alone(tmp_path: Path) -> None:
    _yaml(tmp_path, "pull: never\n")
    assert build_settings(RawOptions(), tmp_path).pull == "never"


def test_ini_beats_yaml(tmp_path: Path) -> None:
    _yaml(tmp_path, "pull: never\n")
    assert build_settings(RawOptions(ini_pull="always"), tmp_path).pull == "always"


def test_cli_beats_ini_and_yaml(tmp_path: Path) -> None:
    _yaml(tmp_path, "pull: never\n")
    assert build_settings(RawOptions(cli_pull="missing", ini_pull="always"), tmp_path).pull == "missing"


def test_wrong_ini_value_names_the_ini_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        build_settings(RawOptions(ini_pull="sometimes"), tmp_path)
    assert exc.value.where == "infra_pull (ini)"
    assert "'sometimes'" in str(exc.value)


def test_wrong_yaml_value_names_the_line(tmp_path: Path) -> None:
    _yaml(tmp_path, "keep: never\npull: often\n")
    with pytest.raises(SettingsError) as exc:
        build_settings(RawOptions(), tmp_path)
    assert exc.value.where.endswith("infranode.yaml:2 (pull)")


def test_command_line_option_reaches_the_settings(pytester: pytest.Pytester) -> None:
    """The option is registered and wins over the ini key (a real pytest parse, no Docker)."""
    pytester.makeini("[pytest]\ninfra_pull = never\n")
    pytester.makeconftest(
        """
        def pytest_configure(config):
            from pytest_infranode.plugin import _raw_options
            from pytest_infranode.settings import build_settings
            print("PULL=" + build_settings(_raw_options(config), config.rootpath).pull)
        """
    )
    pytester.makepyfile("def test_a():\n    pass\n")
    assert "PULL=never" in pytester.runpytest("-s").stdout.str()
    assert "PULL=always" in pytester.runpytest("-s", "--infra-pull=always").stdout.str()
    bad = pytester.runpytest("--infra-pull=sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid choice: 'sometimes'" in bad.stderr.str()
