"""Live converge output: LineEcho cuts streamed chunks into whole, prefixed lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.progress import LineEcho
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings


def test_lines_are_cut_at_newlines_only() -> None:
    shown: list[str] = []
    echo = LineEcho(shown.append, "  n | ")
    echo(b"TASK [a] ***\nok: [deb")
    assert shown == ["  n | TASK [a] ***"]
    echo(b"ian-12]\r\n\nchanged")
    assert shown == ["  n | TASK [a] ***", "  n | ok: [debian-12]", "  n | "]
    echo.flush()
    assert shown[-1] == "  n | changed"
    echo.flush()
    assert len(shown) == 4


def test_a_character_split_across_chunks_is_kept_whole() -> None:
    shown: list[str] = []
    echo = LineEcho(shown.append)
    data = "café ✓\n".encode()
    echo(data[:4])
    echo(data[4:])
    assert shown == ["café ✓"]


def test_converge_result_carries_changes() -> None:
    result = ConvergeResult(0, "out", changed=True, changes=("changed: Home page (template)",))
    assert result.ok
    assert result.changes == ("changed: Home page (template)",)
    assert ConvergeResult(0).changes == ()


def test_idempotence_precedence(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text("idempotence: true\n")
    assert build_settings(RawOptions(), tmp_path).idempotence is True
    assert build_settings(RawOptions(ini_idempotence="false"), tmp_path).idempotence is False
    assert (
        build_settings(RawOptions(ini_idempotence="no", cli_idempotence=True), tmp_path).idempotence is True
    )
    (tmp_path / "infranode.yaml").write_text("platforms: [debian-12]\n")
    assert build_settings(RawOptions(), tmp_path).idempotence is False


def test_idempotence_must_be_a_flag(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text("platforms: [debian-12]\nidempotence: sometimes\n")
    with pytest.raises(SettingsError) as info:
        build_settings(RawOptions(), tmp_path)
    assert "expected true or false, not 'sometimes'" in str(info.value)
    assert "infranode.yaml:2 (idempotence)" in info.value.where
    with pytest.raises(SettingsError, match="infra_idempotence"):
        build_settings(RawOptions(ini_idempotence="maybe"), tmp_path)


def test_option_and_ini_key_reach_the_settings(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ninfra_idempotence = true\n")
    config = pytester.parseconfig()
    assert config.getini("infra_idempotence") == "true"
    assert pytester.parseconfig("--infra-idempotence").getoption("infra_idempotence") is True
