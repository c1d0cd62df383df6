"""The documentation's reference pages show exactly what the code has.

The option table is drawn from ``options.py`` at build time (``docs/_ext/infranode_reference.py``);
these tests run those readers without Sphinx, and check the hand-written tables of
``docs/configuration.md`` and the README's links into the documentation.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pytest_infranode.options import OPTIONS
from pytest_infranode.options import YAML_KEYS
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.settings import NODE_KEYS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
FIX = "update the table in docs/configuration.md"


@pytest.fixture(scope="module")
def reference() -> Iterator[ModuleType]:
    """``docs/_ext/infranode_reference.py``, the module the Sphinx extension draws its tables with."""
    name = "infranode_reference"
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture(scope="module")
def registered(request: pytest.FixtureRequest) -> tuple[set[str], set[str]]:
    config = request.config
    group = config._parser.getgroup("infranode")
    options = {name for opt in group.options for name in opt.names() if name.startswith("--")}
    ini_keys = {name for name in config._parser._inidict if name.startswith("infra_")}
    return options, ini_keys


def _flag(command_line: str) -> str:
    return command_line.split("=", 1)[0]


def test_the_reference_has_a_row_for_every_registered_option_and_ini_key(
    reference: ModuleType, registered: tuple[set[str], set[str]]
) -> None:
    rows = reference.option_rows()
    options, ini_keys = registered
    assert {_flag(r.command_line) for r in rows} == options
    assert {r.ini_key for r in rows} == ini_keys
    assert {r.yaml_key for r in rows if r.yaml_key} | set(reference.KEY_SETS["file"]) == set(YAML_KEYS)


def test_each_row_shows_the_option_as_pytest_help_does(reference: ModuleType) -> None:
    rows = {r.noun: r for r in reference.option_rows()}
    assert rows["keep"].command_line == "--infra-keep={never,failure,always}"
    assert rows["boot_timeout"].command_line == "--infra-boot-timeout=SECONDS"
    assert rows["idempotence"].command_line == "--infra-idempotence"
    assert rows["platforms"].command_line == "--infra-platform=NAMES"
    assert rows["config"].yaml_key is None
    assert rows["boot_timeout"].default == "120"
    assert rows["keep"].meaning.startswith("Keep nodes after the session")


def test_every_option_names_its_default_after_the_mark(reference: ModuleType) -> None:
    """The reference's default column is read from the help; a help without it stops the build."""
    for option in OPTIONS:
        assert reference.DEFAULT_MARK in option.help, f"end the help of {option.flag} with '; default: ...'"


def test_a_help_without_its_default_is_an_error_that_says_so(
    reference: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_infranode import options

    broken = options.Option("keep", "Keep nodes", "Keep nodes", options.parse_keep, "never")
    monkeypatch.setattr(reference, "OPTIONS", (broken,))
    with pytest.raises(reference.ReferenceError, match=r"--infra-keep .* does not name its default"):
        reference.option_rows()


def _table(page: str, header_start: str) -> list[str]:
    """The first column's code of the markdown table of ``page`` whose header starts so."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    keys = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        found = re.match(r"\|\s*`([^`:]+):?`", line)
        if found:
            keys.append(found.group(1))
    return keys


def test_the_file_only_keys_table_names_exactly_the_keys_the_reader_accepts(reference: ModuleType) -> None:
    documented = _table("configuration.md", "| infranode.yaml |")
    assert reference.key_mismatch("file", documented) == "", FIX


def test_the_node_keys_table_names_exactly_the_node_keys(reference: ModuleType) -> None:
    documented = _table("configuration.md", "| node key |")
    assert documented == list(NODE_KEYS), FIX
    assert reference.key_mismatch("node", documented) == ""


def test_key_mismatch_says_what_is_missing_unknown_and_twice(reference: ModuleType) -> None:
    problem = reference.key_mismatch("node", ["groups", "groups", "volumes"])
    assert "not documented: provisioner, ports" in problem
    assert "documented but not accepted by the code: volumes" in problem
    assert "documented twice: groups" in problem


def test_the_configuration_page_draws_the_options_from_the_code() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert "```{infranode-options}" in text
    assert ":::{infranode-keys} file" in text
    assert ":::{infranode-keys} node" in text


def test_the_platform_rows_are_the_builtin_catalog(reference: ModuleType) -> None:
    rows = reference.platform_rows()
    assert [r.name for r in rows] == [p.name for p in BUILTIN_PLATFORMS]
    debian = next(r for r in rows if r.name == "debian-12")
    assert (debian.image, debian.init, debian.debootstrap) == ("debian:12", "systemd", "bookworm")
    assert "{infranode-platforms}" in (DOCS / "platforms.md").read_text(encoding="utf-8")


def test_the_command_reference_has_every_subcommand(reference: ModuleType) -> None:
    progs = [prog for prog, _ in reference.command_helps()]
    assert progs[0] == "infranode"
    for sub in ("platforms", "images", "images bootstrap", "nodes", "login", "cleanup", "doctor"):
        assert f"infranode {sub}" in progs
    assert "infranode import molecule" in progs


def test_markers_are_registered_and_documented(request: pytest.FixtureRequest) -> None:
    registered = " ".join(request.config.getini("markers"))
    docs = (DOCS / "specs.md").read_text(encoding="utf-8")
    for marker in ("infra_platforms", "infra_node"):
        assert f"{marker}(" in registered
        assert f"@pytest.mark.{marker}(" in docs


def test_readme_links_into_the_docs_name_pages_that_exist() -> None:
    """The README (PyPI's page) links to the documentation with absolute URLs built on the one
    address in pyproject.toml, each to a page of docs/."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = project["urls"]["Documentation"]
    assert base.endswith("/")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>", readme)
    targets = [a or b for a, b in links]
    into_docs = [t for t in targets if t.startswith(base)]
    assert len(into_docs) >= 10
    for target in into_docs:
        page = target[len(base) :].split("#")[0] or "index.html"
        assert page.endswith(".html"), target
        assert (DOCS / page.replace(".html", ".md")).is_file(), f"{target}: no docs/{page[:-5]}.md"
    relative = [t for t in targets if "://" not in t and not t.startswith("#")]
    assert relative == [], f"relative links break on PyPI's page: {relative}"


def test_readme_keeps_the_two_commands() -> None:
    """The README's two commands are what .ci/run and a new user run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/dev example     # the main job" in readme
    assert "bash scripts/dev test        # the project's own tests" in readme
