"""The lowest versions pyproject.toml allows, as pip constraints (``NAME==LOWER``), one a line.

    python scripts/dependency-bounds.py [EXTRA...] > lowest.txt

Reads the ``>=`` lower bound of each dependency (and of the named extras) from pyproject.toml, so
the bounds are declared once and scripts/check-bounds.sh tests exactly them. A dependency without
a lower bound, or with a marker that does not apply to this Python, is left out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*(?:;\s*(.*))?$")


def lower_bounds(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if not match:
            continue
        name, version, marker = match.groups()
        if marker and "python_version < '3.11'" in marker.replace('"', "'") and sys.version_info >= (3, 11):
            continue
        pins[name.lower()] = version
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(lower_bounds(root / "pyproject.toml", sys.argv[1:])))
