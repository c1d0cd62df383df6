"""pytest-infranode: infrastructure specs as ordinary pytest tests, run against Docker nodes."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version

from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.node import Node
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.settings import ProvisionerConfig

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
