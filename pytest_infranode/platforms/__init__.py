"""Platforms: named OS targets, the built-in catalog, and lookup with "did you mean". Pure.

``platform.py`` holds the :class:`Platform` value; ``package_managers.py`` how each package
manager prepares an image and installs packages; ``builtin.py`` the built-in platforms;
``definitions.py`` ``platform_definitions:`` of infranode.yaml; ``catalog.py`` the catalog and
what a command-line word selects. The names below are the public ones (a conftest.py's
``pytest_infranode_add_platforms`` imports them from here).
"""

from __future__ import annotations

from pytest_infranode.platforms.builtin import BUILTIN_PLATFORMS
from pytest_infranode.platforms.catalog import Catalog
from pytest_infranode.platforms.catalog import PluginPlatforms
from pytest_infranode.platforms.catalog import build_catalog
from pytest_infranode.platforms.catalog import split_names
from pytest_infranode.platforms.definitions import DEFINITION_KEYS
from pytest_infranode.platforms.definitions import PlatformDefinition
from pytest_infranode.platforms.definitions import check_definition
from pytest_infranode.platforms.package_managers import PACKAGE_MANAGERS
from pytest_infranode.platforms.package_managers import PackageManager
from pytest_infranode.platforms.package_managers import install_command
from pytest_infranode.platforms.platform import DEBIAN_MIRROR
from pytest_infranode.platforms.platform import NAME_RE
from pytest_infranode.platforms.platform import SYSTEMD_TMPFS
from pytest_infranode.platforms.platform import Bootstrap
from pytest_infranode.platforms.platform import Init
from pytest_infranode.platforms.platform import Platform

__all__ = [
    "BUILTIN_PLATFORMS",
    "DEBIAN_MIRROR",
    "DEFINITION_KEYS",
    "NAME_RE",
    "PACKAGE_MANAGERS",
    "SYSTEMD_TMPFS",
    "Bootstrap",
    "Catalog",
    "Init",
    "PackageManager",
    "Platform",
    "PlatformDefinition",
    "PluginPlatforms",
    "build_catalog",
    "check_definition",
    "install_command",
    "split_names",
]
