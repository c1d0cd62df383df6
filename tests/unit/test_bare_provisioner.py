"""The ``none`` provisioner (``provisioners/bare.py``): what a session without ``provisioner:`` gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners.bare import NoProvisioner
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings


def test_no_provisioner_key_means_the_none_provisioner(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text("boot_timeout: 60\n")
    settings = build_settings(RawOptions(cli_platforms=["debian-12"]), tmp_path)
    assert settings.provisioner.name == "none"
    NoProvisioner().check(settings.provisioner)  # nothing to refuse


def test_no_configuration_file_at_all_means_the_none_provisioner(tmp_path: Path) -> None:
    settings = build_settings(RawOptions(cli_platforms=["debian-12"]), tmp_path)
    assert settings.provisioner.name == "none"


def test_options_given_to_the_none_provisioner_are_refused_with_the_file_line(tmp_path: Path) -> None:
    (tmp_path / "infranode.yaml").write_text("boot_timeout: 60\nprovisioner: {name: none, inline: [true]}\n")
    settings = build_settings(RawOptions(cli_platforms=["debian-12"]), tmp_path)
    with pytest.raises(SettingsError) as excinfo:
        NoProvisioner().check(settings.provisioner)
    text = str(excinfo.value)
    assert "the none provisioner takes no options, but was given inline" in text
    assert "infranode.yaml:2" in text
    assert "remove them for a bare node" in text


def test_its_converge_runs_nothing() -> None:
    result = NoProvisioner().converge(None, None, lambda _chunk: None)  # type: ignore[arg-type]
    assert (result.ok, result.ran, result.changed, result.output) == (True, False, False, "")
