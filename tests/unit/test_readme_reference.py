"""README's configuration reference lists exactly the options, ini keys and YAML keys the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_infranode.settings import NODE_KEYS
from pytest_infranode.settings import YAML_KEYS

README = Path(__file__).parents[2] / "README.md"
FIX = "update the table under `## Configuration` in README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table(section: str, header_start: str) -> list[list[str]]:
    """The rows of the markdown table whose header starts with ``header_start``."""
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _code(cell: str) -> str | None:
    """`--infra-keep=POLICY` → --infra-keep; `keep:` → keep; no code → None."""
    found = re.match(r"`([^`=:]+)[=:]?[^`]*`", cell)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def registered(request: pytest.FixtureRequest) -> tuple[set[str], set[str]]:
    config = request.config
    group = config._parser.getgroup("infranode")
    options = {name for opt in group.options for name in opt.names() if name.startswith("--")}
    ini_keys = {name for name in config._parser._inidict if name.startswith("infra_")}
    return options, ini_keys


def test_every_option_and_ini_key_is_in_the_readme(registered: tuple[set[str], set[str]]) -> None:
    rows = _table(_section("Configuration"), "| option |")
    options, ini_keys = registered
    in_readme_options = {c for row in rows if (c := _code(row[0]))}
    in_readme_ini = {c for row in rows if (c := _code(row[1]))}
    assert in_readme_options == options, FIX
    assert in_readme_ini == ini_keys, FIX


def test_every_yaml_key_is_in_the_readme() -> None:
    rows = _table(_section("Configuration"), "| option |")
    assert {c for row in rows if (c := _code(row[2]))} == set(YAML_KEYS), FIX


def test_every_node_key_is_in_the_readme() -> None:
    rows = _table(_section("Configuration"), "| node key |")
    assert {c for row in rows if (c := _code(row[0]))} == set(NODE_KEYS), FIX


def test_option_and_its_ini_key_share_a_row(registered: tuple[set[str], set[str]]) -> None:
    """Each option's ini key is on its row: --infra-<noun> ↔ infra_<noun>[s]."""
    for row in _table(_section("Configuration"), "| option |"):
        option, ini = _code(row[0]), _code(row[1])
        if option and ini:
            assert ini.rstrip("s") == option[2:].replace("-", "_").rstrip("s"), row


def test_markers_are_registered_and_documented(request: pytest.FixtureRequest) -> None:
    registered = " ".join(request.config.getini("markers"))
    docs = _section("Fixtures and markers")
    for marker in ("infra_platforms", "infra_node"):
        assert f"{marker}(" in registered
        assert f"@pytest.mark.{marker}(" in docs


def test_each_readme_row_is_one_option_of_the_table() -> None:
    """The option table (``options.py``) is the source: each row of the README names the same
    option, ini key and YAML key as one entry of it."""
    from pytest_infranode.options import OPTIONS

    rows = _table(_section("Configuration"), "| option |")
    in_readme = {(_code(r[0]), _code(r[1]), _code(r[2])) for r in rows if _code(r[0])}
    in_table = {(o.flag, o.ini_key, o.yaml_key) for o in OPTIONS}
    assert in_readme == in_table, FIX


def test_the_plugin_registers_exactly_the_table(registered: tuple[set[str], set[str]]) -> None:
    from pytest_infranode.options import OPTIONS

    options, ini_keys = registered
    assert options == {o.flag for o in OPTIONS}
    assert ini_keys == {o.ini_key for o in OPTIONS}
