from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_infranode

PACKAGE = Path(pytest_infranode.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
MAY_IMPORT_PYTEST = {"plugin.py", "session.py", "hookspecs.py", "verifyitems.py", "signals.py"}
ENGINE_ONLY = {"docker", "requests", "tenacity"}


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every absolute import in a module, nested ones included."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_the_package_was_found() -> None:
    names = {relative(p) for p in MODULES}
    assert {"plugin.py", "settings.py", "engine/containers.py", "engine/images.py"} <= names


def test_imported_roots_sees_nested_and_from_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "import os.path\nfrom docker import errors\nfrom . import x\ndef f():\n    import _pytest.fixtures\n",
        encoding="utf-8",
    )
    assert imported_roots(sample) == {"os", "docker", "_pytest"}


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_only_the_glue_imports_pytest(path: Path) -> None:
    if relative(path) in MAY_IMPORT_PYTEST:
        return
    assert not imported_roots(path) & {"pytest", "_pytest"}, f"{relative(path)} imports pytest"


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_only_the_engine_imports_docker(path: Path) -> None:
    if relative(path).startswith("engine/"):
        return
    found = imported_roots(path) & ENGINE_ONLY
    assert not found, f"{relative(path)} imports {sorted(found)}"


def test_engine_api_does_not_import_docker() -> None:
    assert not imported_roots(PACKAGE / "engine" / "api.py") & ENGINE_ONLY


@pytest.mark.parametrize("name", pytest_infranode.__all__)
def test_public_names_resolve(name: str) -> None:
    assert getattr(pytest_infranode, name) is not None


def test_public_names_are_sorted_and_unique() -> None:
    assert len(set(pytest_infranode.__all__)) == len(pytest_infranode.__all__)
    assert list(pytest_infranode.__all__) == sorted(pytest_infranode.__all__)


SDK_MODULES = ("docker", "requests", "urllib3", "paramiko")


def test_a_run_without_platforms_does_not_import_the_docker_sdk(pytester: pytest.Pytester) -> None:
    """pytest loads the plugin in every run of an environment that has it; a run without
    platforms must not pay for the Docker SDK (about half of such a run's start-up time)."""
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        f"    found = sorted(m for m in {SDK_MODULES!r} if m in sys.modules)\n"
        "    print('SDK-MODULES', found, session.config.pluginmanager.has_plugin('infranode'))\n"
    )
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SDK-MODULES [] True*"])


def test_a_run_with_platforms_gets_the_engine() -> None:
    """The lazy names resolve to the real classes (and unknown names still fail)."""
    from pytest_infranode import engine
    from pytest_infranode.engine.core import Engine
    from pytest_infranode.node import Node

    assert engine.Engine is Engine
    assert pytest_infranode.Node is Node
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = engine.Nothing
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = pytest_infranode.Nothing
