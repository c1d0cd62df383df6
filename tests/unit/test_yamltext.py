"""Values YAML would change are refused where the configuration is read, never passed on as
``True``, ``None`` or ``3.1`` (#20: nothing silently coerced). No daemon."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners.ansible import validate
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from pytest_infranode.yamltext import as_text
from pytest_infranode.yamltext import first_not_text
from pytest_infranode.yamltext import shown


@pytest.mark.parametrize(
    ("value", "text"),
    [("on", "on"), ("", ""), (80, "80"), (0, "0"), (True, None), (None, None), (3.1, None), ([1], None)],
)
def test_strings_and_integers_are_text_the_rest_is_not(value: object, text: str | None) -> None:
    assert as_text(value) == text


def test_the_first_value_that_is_not_text_is_named_as_yaml_wrote_it() -> None:
    assert first_not_text(["a", 1, False, 2.5]) is False
    assert first_not_text(["a", 1]) is None
    assert [shown(v) for v in (True, False, None, 3.1, "x")] == ["true", "false", "null", "3.1", "'x'"]


def _settings(tmp_path: Path, text: str) -> None:
    (tmp_path / "infranode.yaml").write_text(textwrap.dedent(text))
    build_settings(RawOptions(), tmp_path)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "nodes: {web: {env: {DEBUG: true}}}\n",
            "env of node 'web': 'DEBUG' must be a name with a string value, not true",
        ),
        ("nodes: {web: {env: {PYTHON: 3.10}}}\n", "'PYTHON' must be a name with a string value, not 3.1"),
        ("nodes: {web: {env: {EMPTY: }}}\n", "'EMPTY' must be a name with a string value, not null"),
        ("nodes: {web: {groups: [front, true]}}\n", "groups must be a list of strings, but holds true"),
        ("nodes: {web: {side_effect: [null]}}\n", "side_effect must be a list of strings, but holds null"),
        (
            "platform_definitions: {d: {base: debian-12, env: {LANG: 1.5}}}\n",
            "`env.LANG` of platform 'd' must be a string, not 1.5",
        ),
        (
            "platform_definitions: {d: {base: debian-12, packages: [curl, false]}}\n",
            "`packages` of platform 'd' must be a list of strings, but holds false",
        ),
    ],
)
def test_a_value_yaml_would_change_is_refused_naming_it(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        _settings(tmp_path, yaml_text)
    assert message in str(excinfo.value)
    assert "infranode.yaml" in str(excinfo.value)
    assert "quote it" in excinfo.value.fix


def test_integers_and_strings_still_pass(tmp_path: Path) -> None:
    _settings(
        tmp_path,
        """
        nodes: {web: {env: {PORT: 80, MODE: 'on'}, groups: [front]}}
        platform_definitions: {d: {base: debian-12, env: {LANG: C.UTF-8, EMPTY: }}}
        """,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"env": {"ANSIBLE_FORCE_COLOR": False}}, "`env.ANSIBLE_FORCE_COLOR` must be a string, not false"),
        ({"args": ["--forks", 2.0]}, "`args` must be a list of strings, but holds 2.0"),
    ],
)
def test_a_provisioner_option_yaml_would_change_is_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    config = ProvisionerConfig(name="ansible", options={"playbook": "site.yml", **options}, base_dir=tmp_path)
    with pytest.raises(SettingsError) as excinfo:
        validate(config)
    assert message in str(excinfo.value)
    assert "quote it" in excinfo.value.fix
