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

    def __init__(
        self,
        node: Node,
        *,
        command_timeout: float | None = None,
        inventory: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.node = node
        self.command_timeout = command_timeout
        self.inventory = inventory
        """The session inventory and the node's host name in it, for testinfra's module runner."""
        self.HAS_RUN_ANSIBLE = inventory is not None
        super().__init__(node.name, **kwargs)

    def _runner(self) -> Any:
        from testinfra.utils.ansible_runner import AnsibleRunner

        assert self.inventory is not None
        return AnsibleRunner.get_runner(self.inventory[0])

    def run_ansible(self, module_name: str, module_args: str | None = None, **kwargs: Any) -> Any:
        """testinfra's module call on the host: the module, run by testinfra's runner on this node's
        host of the session inventory (its commands reach the node through the engine, not
        through the exec channel)."""
        assert self.inventory is not None
        return self._runner().run_module(
            self.inventory[1], module_name, module_args, get_encoding=lambda: self.encoding, **kwargs
        )

    def get_variables(self) -> dict[str, Any]:
        """The node's variables in the session inventory (``inventory_hostname``, groups, vars)."""
        assert self.inventory is not None
        variables: dict[str, Any] = self._runner().get_variables(self.inventory[1])
        return variables

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


def make_host(
    node: Node, *, command_timeout: float | None = None, inventory: tuple[str, str] | None = None
) -> testinfra.host.Host:
    """A testinfra ``Host`` bound to ``node``; every testinfra module works on it.

    :param command_timeout: seconds each command may run before it is killed and its test fails
        (through the exec channel; the one-exec-per-command fallback has no timeout).
    :param inventory: the session inventory and the node's host name in it: then testinfra's
        module runner works on the node too.
    """
    backend = NodeBackend(node, command_timeout=command_timeout, inventory=inventory)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
