"""pytest-infranode: infrastructure specs as ordinary pytest tests, run against Docker nodes."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from typing import TYPE_CHECKING
from typing import Any

from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.settings import ProvisionerConfig

if TYPE_CHECKING:
    from pytest_infranode.node import Node

try:
    __version__ = version("pytest-infranode")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConvergeError",
    "ConvergeResult",
    "InfranodeError",
    "InfranodeWarning",
    "Node",
    "Platform",
    "Provisioner",
    "ProvisionerConfig",
    "__version__",
    "hookimpl",
]

# Node is loaded on first use: it brings in the Docker SDK, which a pytest run without
# platforms (pytest imports this package for the plugin in every run) should not pay for.


def __getattr__(name: str) -> Any:
    if name == "Node":
        from pytest_infranode.node import Node

        return Node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
