"""The ``none`` provisioner: nothing runs in the node, which stays as its platform made it.

What a session gets when its configuration has no ``provisioner:`` (or no configuration file
at all): a bare node of each platform, to check an image or to converge from a fixture.
``provisioner: none`` says the same explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import final

from pytest_infranode.errors import SettingsError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import Provisioner

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig


@final
class NoProvisioner:
    """Leaves the node bare."""

    name = "none"
    leaves_bare = True

    def check(self, config: ProvisionerConfig) -> None:
        if config.options:
            raise SettingsError(
                f"the none provisioner takes no options, but was given {', '.join(sorted(config.options))}",
                where=config.source.where("provisioner"),
                fix="name the provisioner that reads them "
                "(`provisioner: {name: shell, script: converge.sh}`), or remove them for a bare node",
            )

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        return ConvergeResult(0, "", changed=False, ran=False)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [NoProvisioner()]
