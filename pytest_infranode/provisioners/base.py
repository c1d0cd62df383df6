"""The Provisioner Protocol and the result of a converge."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
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
    :param changed: whether it changed the node, when the provisioner can tell (None: it cannot).
    :param changes: what it changed, in the provisioner's own words (a task and its diff, a
        resource), one entry per change; shown when an idempotence check fails.
    """

    exit_status: int
    output: str = ""
    changed: bool | None = None
    changes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-lines:])


MASK = b"********"


def secret_values(names: object, environ: Mapping[str, str]) -> list[str]:
    """The values of the environment variables named in a provisioner's ``secret_env``."""
    if not isinstance(names, list):
        return []
    return [environ[n] for n in names if isinstance(n, str) and environ.get(n)]


def mask(text: str, secrets: list[str]) -> str:
    """Replace every secret in ``text`` (longest first, so overlapping ones go too). Pure."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK.decode())
    return text


@final
class MaskingSink:
    """An output sink that masks secrets before passing output on.

    Output is held back up to the last newline so that a secret split across two chunks is still
    found; :meth:`flush` passes on what remains.
    """

    def __init__(self, sink: OutputSink, secrets: list[str]) -> None:
        self._sink = sink
        self._secrets = sorted((s.encode() for s in secrets if s), key=len, reverse=True)
        self._pending = b""

    def _masked(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, MASK)
        return data

    def __call__(self, chunk: bytes) -> None:
        if not self._secrets:
            self._sink(chunk)
            return
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        if cut:
            self._sink(self._masked(data[:cut]))

    def flush(self) -> None:
        if self._pending:
            self._sink(self._masked(self._pending))
            self._pending = b""


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
