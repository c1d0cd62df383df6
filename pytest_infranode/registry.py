"""What plugins contribute: provisioners by name (duplicates refused). Their platforms join the
catalog in ``platforms/catalog.py``."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pytest_infranode.errors import PluginError
from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners.base import Provisioner

if TYPE_CHECKING:
    from pytest_infranode.settings import ProvisionerConfig


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


def check_known(provisioners: Mapping[str, Provisioner], configs: Iterable[ProvisionerConfig]) -> None:
    """Every provisioner the settings name is one that a plugin (or infranode) added.

    :raises SettingsError: naming where the unknown one was written, and the known ones.
    """
    for config in configs:
        if config.name not in provisioners:
            raise SettingsError(
                f"unknown provisioner {config.name!r}",
                where=config.source.where("provisioner"),
                fix=f"use one of: {', '.join(sorted(provisioners))}, or install the plugin that adds it",
            )
