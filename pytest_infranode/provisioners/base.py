"""The Provisioner Protocol and the result of a converge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Protocol
from typing import final
from typing import runtime_checkable

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

OutputSink = Callable[[bytes], None]


@final
@dataclass(frozen=True, slots=True)
class ConvergeResult:
    """What a converge did.

    :param exit_status: the provisioner's exit status (0 is success).
    :param output: its combined output, as text.
    :param changed: whether it changed the node, when the provisioner can tell.
    """

    exit_status: int
    output: str = ""
    changed: bool | None = None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-lines:])


@runtime_checkable
class Provisioner(Protocol):
    """Turns a bare node into the machine under test.

    ``check`` runs at configure time, before any node exists: it validates the options and the
    files they name and raises :class:`~pytest_infranode.errors.SettingsError`. ``converge``
    runs once per node and streams the tool's output to ``output``.
    """

    name: str

    def check(self, config: ProvisionerConfig) -> None: ...

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult: ...
