"""A testinfra backend that runs commands in a node, and the Host factory."""

from __future__ import annotations

from typing import Any
from typing import final

import testinfra.backend.base
import testinfra.host

from pytest_infranode.node import Node


@final
class NodeBackend(testinfra.backend.base.BaseBackend):  # type: ignore[misc]  # testinfra ships no py.typed
    """Runs testinfra's commands in a node through the Docker API (no docker CLI needed)."""

    NAME = "infranode"

    def __init__(self, node: Node, **kwargs: Any) -> None:
        self.node = node
        super().__init__(node.name, **kwargs)

    def get_pytest_id(self) -> str:
        return self.node.platform.name

    def run(self, command: str, *args: str, **kwargs: Any) -> testinfra.backend.base.CommandResult:
        cmd = self.get_command(command, *args)
        result = self.node.run_argv(["/bin/sh", "-c", cmd])
        return self.result(result.exit_status, self.encode(cmd), result.stdout, result.stderr)


def make_host(node: Node) -> testinfra.host.Host:
    """A testinfra ``Host`` bound to ``node``; every testinfra module works on it."""
    backend = NodeBackend(node)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
