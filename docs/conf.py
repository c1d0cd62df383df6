"""Sphinx configuration of the pytest-infranode documentation.

Build it as CI does: ``bash scripts/check-docs.sh`` (or
``sphinx-build -W --keep-going -n -b html docs docs/_build/html`` with the ``docs`` extra
installed). The pages are Markdown (MyST); the reference tables are drawn from the code by
``_ext/infranode_docs.py``.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import tomllib

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))

# The version is declared once, in pyproject.toml.
_project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

project = "pytest-infranode"
author = "pytest-infranode developers"
copyright = "pytest-infranode developers"
release = _project["version"]
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "infranode_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # `[...](page.md#a-heading)` links are checked, like `{ref}`s

# Every cross-reference must resolve (-n); third-party types the pages do not document:
nitpicky = True
# the standard library (no intersphinx: the build must not need the network).
nitpick_ignore_regex = [
    ("py:class", r"(collections\.abc|pathlib|typing)\.\w+"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"


def _type_checking_names(module_name: str) -> None:
    """Give a module the names it imports under ``if TYPE_CHECKING:``, as a type checker sees
    them, so that autodoc can resolve its string annotations (``node: Node``) and link them."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    for statement in tree.body:
        if isinstance(statement, ast.If) and ast.unparse(statement.test).endswith("TYPE_CHECKING"):
            for imported in statement.body:
                if isinstance(imported, ast.Import | ast.ImportFrom):
                    exec(compile(ast.Module([imported], []), module.__file__ or "", "exec"), vars(module))


for _name in (
    "pytest_infranode",
    "pytest_infranode.hookspecs",
    "pytest_infranode.node",
    "pytest_infranode.provisioners.base",
    "pytest_infranode.settings",
):
    _type_checking_names(_name)

html_theme = "furo"
html_title = f"pytest-infranode {release}"
smartquotes = False  # `--infra-keep` stays two hyphens in the generated tables
