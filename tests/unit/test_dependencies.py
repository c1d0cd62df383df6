"""The package's modules depend on each other one way: no import circle. No daemon."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_infranode

PACKAGE = Path(pytest_infranode.__file__).parent


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")


def _runtime_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, at its top or in a function (a deferred
    import is still a dependency); those under TYPE_CHECKING are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("pytest_infranode"):
                base = sub.module.removeprefix("pytest_infranode").lstrip(".")
                for alias in sub.names:
                    candidate = f"{base}.{alias.name}".lstrip(".")
                    found.add(
                        candidate
                        if (PACKAGE / Path(*candidate.split("."))).with_suffix(".py").exists()
                        else base
                    )
            elif isinstance(sub, ast.Import):
                for alias in sub.names:
                    if alias.name.startswith("pytest_infranode."):
                        found.add(alias.name.removeprefix("pytest_infranode."))
    return {m for m in found if m}


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _runtime_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def _circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == {frozenset({"a", "b"})}


def test_no_import_circle() -> None:
    assert _circles(_graph()) == set()


def test_only_the_doctor_run_imports_the_daemon_module() -> None:
    """daemon.py explains a failed connect with the diagnosis modules; they never import it back."""
    graph = _graph()
    parts = [name for name in graph if name.startswith("engine.diagnosis")]
    assert "engine.diagnosis.probes" in parts
    for part in parts:
        assert "engine.daemon" not in graph[part], part
    assert "engine.doctor" not in graph["engine.daemon"]


def test_the_session_parts_do_not_import_the_session() -> None:
    graph = _graph()
    parts = (
        "connection",
        "bringup",
        "factory",
        "converge",
        "keep",
        "removal",
        "sharing",
        "summary",
        "targets",
        "options",
        "boot",
    )
    for part in parts:
        assert "session" not in graph[part], part
        assert "plugin" not in graph[part], part
