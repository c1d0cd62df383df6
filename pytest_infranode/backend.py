"""A testinfra backend that runs commands in a node, and the Host factory."""

from __future__ import annotations

import warnings
from typing import Any
from typing import final

import testinfra.backend.base
import testinfra.host

from pytest_infranode.engine.api import ExecResult
from pytest_infranode.errors import ChannelUnavailable
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.node import Node


@final
class NodeBackend(testinfra.backend.base.BaseBackend):  # type: ignore[misc]  # testinfra ships no py.typed
    """Runs testinfra's commands in a node through its exec channel (a long-lived shell).

    Where the channel cannot start (no POSIX ``sh`` in the image), each command runs in its
    own ``exec`` instead, after one :class:`~pytest_infranode.errors.InfranodeWarning`.
    """

    NAME = "infranode"

    def __init__(self, node: Node, *, command_timeout: float | None = None, **kwargs: Any) -> None:
        self.node = node
        self.command_timeout = command_timeout
        super().__init__(node.name, **kwargs)

    def get_pytest_id(self) -> str:
        return self.node.platform.name

    def run(self, command: str, *args: str, **kwargs: Any) -> testinfra.backend.base.CommandResult:
        cmd = self.get_command(command, *args)
        result = self.run_shell(cmd)
        return self.result(result.exit_status, self.encode(cmd), result.stdout, result.stderr)

    def run_shell(self, cmd: str) -> ExecResult:
        """Run a shell command line in the node: through the channel, else one exec."""
        channel = self.node.channel
        if channel is not None and channel.unavailable is None:
            try:
                return channel.run(cmd, timeout=self.command_timeout)
            except ChannelUnavailable as err:
                warnings.warn(
                    InfranodeWarning(
                        f"{err.what}; each testinfra command runs in its own exec instead (slower)\n"
                        f"  where: {err.where}\n  fix:   {err.fix}\n{err.detail}".rstrip()
                    ),
                    stacklevel=2,
                )
        return self.node.run_argv(["/bin/sh", "-c", cmd])


def make_host(node: Node, *, command_timeout: float | None = None) -> testinfra.host.Host:
    """A testinfra ``Host`` bound to ``node``; every testinfra module works on it.

    :param command_timeout: seconds each command may run before it is killed and its test fails
        (through the exec channel; the one-exec-per-command fallback has no timeout).
    """
    backend = NodeBackend(node, command_timeout=command_timeout)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
