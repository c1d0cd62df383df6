"""What plugins contribute: platforms to the catalog, provisioners by name (duplicates refused)."""

from __future__ import annotations

from pytest_infranode.errors import PluginError
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.platforms import PlatformDefinition
from pytest_infranode.provisioners.base import Provisioner


def build_catalog(
    contributions: list[list[Platform] | None], definitions: tuple[PlatformDefinition, ...] = ()
) -> Catalog:
    """Built-ins, then what plugins add, then ``platform_definitions:`` (which may override)."""
    catalog = Catalog()
    for platforms in contributions:
        for platform in platforms or []:
            catalog.add(platform, source="a pytest_infranode_add_platforms hook")
    for definition in definitions:
        catalog.define(definition)
    return catalog


def build_provisioners(contributions: list[list[Provisioner] | None]) -> dict[str, Provisioner]:
    found: dict[str, Provisioner] = {}
    for provisioners in contributions:
        for p in provisioners or []:
            if not isinstance(p, Provisioner):
                raise PluginError(
                    f"{p!r} returned by pytest_infranode_add_provisioners is not a provisioner",
                    fix="give it a `name` and the methods `check(config)` and "
                    "`converge(node, config, output)`",
                )
            if p.name in found:
                raise PluginError(
                    f"two plugins add a provisioner called {p.name!r}: "
                    f"{type(found[p.name]).__module__} and {type(p).__module__}",
                    fix="uninstall one of them, or rename one provisioner",
                )
            found[p.name] = p
    return found
