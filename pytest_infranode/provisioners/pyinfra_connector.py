"""pyinfra connector ``@infranode/<container>``: runs a deploy against a node through the Docker API.

pyinfra's own ``@docker`` connector shells out to the docker CLI; this one reaches the node the
way the rest of pytest-infranode does, through :class:`Engine` (exec API for commands, archive
API for uploads). Registered as the ``infranode`` entry point in the ``pyinfra.connectors``
group; the pyinfra provisioner targets ``@infranode/<container id>``.

Commands go through the node's exec channel (:class:`~pytest_infranode.channel.Channel`, a
long-lived shell: ~0.2 ms a command where an exec costs ~45 ms; a deploy gathers a fact per
command); ``INFRANODE_PYINFRA_CHANNEL=false`` is the slow path, one exec per command, and a node
without a usable shell falls back to it. Uploads are one archive request per file (any size).
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Iterator
from typing import Any
from typing import cast

from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.util import CommandOutput
from pyinfra.connectors.util import OutputLine
from pyinfra.connectors.util import extract_control_arguments
from pyinfra.connectors.util import make_unix_command_for_host

from pytest_infranode.channel import Channel
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.errors import ChannelUnavailable
from pytest_infranode.errors import InfranodeError

DOCKER_HOST_ENV = "INFRANODE_DOCKER_HOST"
CHANNEL_ENV = "INFRANODE_PYINFRA_CHANNEL"
"""``false`` (or ``0``, ``no``, ``off``): one exec per command instead of the exec channel."""
OFF = ("false", "0", "no", "off")


def channel_wanted(environ: Any = os.environ) -> bool:
    """Whether :data:`CHANNEL_ENV` leaves the exec channel on (its default). Pure."""
    return str(environ.get(CHANNEL_ENV, "")).strip().lower() not in OFF


def _read(filename_or_io: Any) -> bytes:
    if isinstance(filename_or_io, str):
        with open(filename_or_io, "rb") as f:
            return f.read()
    data = filename_or_io.read()
    return data.encode() if isinstance(data, str) else bytes(data)


class InfranodeConnector(BaseConnector):
    """A pyinfra host that is a pytest-infranode node."""

    handles_execution = True

    def __init__(self, state: Any, host: Any) -> None:
        super().__init__(state, host)
        self.engine: Engine | None = None
        self.container = str(host.data.get("infranode_container") or host.name.split("/", 1)[-1])
        self.channel: Channel | None = None
        self.via = "channel" if channel_wanted() else "exec"

    @staticmethod
    def make_names_data(name: str | None = None) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        if not name:
            raise ConnectError("@infranode needs a container: @infranode/<container id>")
        yield f"@infranode/{name}", {"infranode_container": name}, ["@infranode"]

    def connect(self) -> None:
        try:
            self.engine = Engine.connect(os.environ.get(DOCKER_HOST_ENV) or None)
        except InfranodeError as err:
            raise ConnectError(str(err)) from err
        print(f"infranode: @infranode/{self.container[:12]} through the {self._how()}")

    def _how(self) -> str:
        return "exec channel" if self.via == "channel" else "exec API, one exec per command"

    def disconnect(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _engine(self) -> Engine:
        if self.engine is None:
            self.connect()
        assert self.engine is not None
        return self.engine

    def run_shell_command(
        self, command: Any, print_output: bool = False, print_input: bool = False, **arguments: Any
    ) -> tuple[bool, CommandOutput]:
        control = extract_control_arguments(cast(Any, arguments))
        unix = make_unix_command_for_host(self.state, self.host, command, **arguments)
        text = unix.get_raw_value()
        if print_input:
            print(f"{self.host.print_prefix}>>> {text}")
        try:
            result = self._run(text)
        except InfranodeError as err:
            raise ConnectError(str(err)) from err
        lines = [
            OutputLine(buffer, line)
            for buffer, data in (("stdout", result.stdout), ("stderr", result.stderr))
            for line in data.decode("utf-8", "replace").splitlines()
        ]
        if print_output:
            for line in lines:
                print(f"{self.host.print_prefix}{line.line}")
        ok = result.exit_status in control.get("_success_exit_codes", [0])
        return ok, CommandOutput(lines)

    def _run(self, command: str) -> ExecResult:
        """``command`` by ``/bin/sh -c`` in the node, through the channel while it serves."""
        if self.via == "channel":
            if self.channel is None:
                self.channel = Channel(self._engine(), self.container)
            try:
                return self.channel.run(command)
            except ChannelUnavailable as err:
                self.via = "exec"
                print(f"infranode: no exec channel in @infranode/{self.container[:12]}, {self._how()}: {err}")
        return self._engine().exec(self.container, ["/bin/sh", "-c", command])

    def put_file(
        self,
        filename_or_io: Any,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        directory, name = posixpath.split(remote_filename)
        try:
            self._engine().put_files(self.container, directory or "/", {name: (_read(filename_or_io), 0o644)})
        except InfranodeError as err:
            raise OSError(str(err)) from err
        return True

    def get_file(
        self,
        remote_filename: str,
        filename_or_io: Any,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        try:
            result = self._run(f"cat -- {shlex.quote(remote_filename)}")
        except InfranodeError as err:
            raise OSError(str(err)) from err
        if result.exit_status != 0:
            raise OSError(result.stderr.decode("utf-8", "replace"))
        if isinstance(filename_or_io, str):
            with open(filename_or_io, "wb") as f:
                f.write(result.stdout)
        else:
            filename_or_io.write(result.stdout)
        return True
