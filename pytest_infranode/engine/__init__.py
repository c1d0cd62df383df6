"""The engine: the only package that talks to Docker (through the Docker SDK, never the CLI).

:class:`Engine` lives in :mod:`pytest_infranode.engine.core` and is loaded on first use: pytest
imports the plugin in every run of an environment that has it installed, and a run without
platforms should not pay for importing the Docker SDK (requests, urllib3, paramiko).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.engine.api import ExecResult

if TYPE_CHECKING:
    from pytest_infranode.engine.core import Engine

__all__ = ["ContainerSpec", "DaemonInfo", "Engine", "EngineProtocol", "ExecResult"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from pytest_infranode.engine.core import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
