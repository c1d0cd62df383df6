"""What plugins contribute: provisioners by name (duplicates refused). Their platforms join the
catalog in ``platforms/catalog.py``."""

from __future__ import annotations

from pytest_infranode.errors import PluginError
from pytest_infranode.provisioners.base import Provisioner


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
