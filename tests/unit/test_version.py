"""The version is declared once (pyproject.toml); the package and the changelog agree with it.

The scheme (docs/releasing.md): semantic versioning, 0.x while the API may change. A release
sets the version in pyproject.toml and renames CHANGELOG.md's ``## [Unreleased]`` to
``## [X.Y.Z] - YYYY-MM-DD`` in one commit, so between releases the two agree and the changes
since collect under a new ``## [Unreleased]``. Before the first release there is no release
heading, and pyproject.toml carries the first release's version, 0.1.0.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest_infranode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parents[2]
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
FIRST = "0.1.0"
RELEASE = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def _declared() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project.get("dynamic", []), "the version is declared in pyproject.toml"
    return str(project["version"])


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_version_is_semantic() -> None:
    assert SEMVER.fullmatch(_declared()), f"{_declared()!r} is not MAJOR.MINOR.PATCH"


def test_the_package_reports_the_declared_version() -> None:
    assert pytest_infranode.__version__ == _declared(), (
        "the installed metadata is older than pyproject.toml: reinstall (bash scripts/dev setup)"
    )


def test_the_changelog_has_an_unreleased_section_first() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## .*$", text, re.MULTILINE)
    assert headings, "CHANGELOG.md has no `## ` sections"
    assert headings[0] == "## [Unreleased]", "keep `## [Unreleased]` as the first section of CHANGELOG.md"
    for heading in headings[1:]:
        assert RELEASE.match(heading), f"{heading!r}: a release heading is `## [X.Y.Z] - YYYY-MM-DD`"


def test_the_latest_release_in_the_changelog_is_the_declared_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = [m["version"] for m in RELEASE.finditer(text)]
    declared = _declared()
    if not releases:
        assert declared == FIRST, f"before the first release pyproject.toml says {FIRST}, not {declared}"
        return
    assert all(SEMVER.fullmatch(r) for r in releases), releases
    assert releases == sorted(releases, key=_key, reverse=True), "release headings go newest first"
    assert releases[0] == declared, (
        f"CHANGELOG.md's latest release is {releases[0]}, pyproject.toml says {declared}: a release "
        "changes both in one commit (docs/releasing.md)"
    )
