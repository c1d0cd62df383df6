"""Ansible connection plugin ``infranode``: runs tasks in a node through the Docker API.

No sshd in the node and no docker CLI on the runner: commands go through the exec API and files
through the archive API, both by way of pytest-infranode's :class:`Engine` (the only code that
imports the Docker SDK; this plugin does not). The ansible provisioner puts this directory on
``ANSIBLE_CONNECTION_PLUGINS`` and writes ``ansible_connection: infranode`` into the inventory.

The fast path (``channel``, the default): commands run in a long-lived shell in the node (the
exec channel). Under the provisioner, that shell outlives the task: the converging process
serves the channels of the run's nodes on a Unix socket (``INFRANODE_CHANNEL_RELAY``, see
``provisioners/_relay.py``); elsewhere (``ansible`` run by hand on the session's inventory) the
connection opens its own for the task. With pipelining (on by default) a module is sent on
stdin: one command a task. ``ansible_infranode_channel: false`` is the slow path: one exec per
command, as before.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.errors import AnsibleError
from ansible.errors import AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from pytest_infranode.channel import Channel
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.errors import ChannelUnavailable
from pytest_infranode.errors import InfranodeError
from pytest_infranode.provisioners._relay import NodeFiles
from pytest_infranode.provisioners._relay import RelayClient
from pytest_infranode.provisioners._relay import RelayError
from pytest_infranode.provisioners._relay import is_root

if TYPE_CHECKING:
    from pytest_infranode.engine import Engine

DOCUMENTATION = """
    name: infranode
    short_description: run tasks in a pytest-infranode node through the Docker API
    description:
        - Runs commands with the Docker exec API, or in a long-lived shell in the node, and copies
          files with the archive API, through pytest-infranode's engine. Needs no sshd in the node
          and no docker CLI.
    author: pytest-infranode developers
    options:
        remote_addr:
            description: The node's container id or name.
            vars:
                # Ansible takes the last of these that is set.
                - name: inventory_hostname
                - name: ansible_host
        remote_user:
            description: The user commands run as (default, the image's user).
            vars:
                - name: ansible_user
        docker_host:
            description: The Docker daemon; default, DOCKER_HOST and then the local socket.
            default: ''
            vars:
                - name: ansible_infranode_docker_host
            env:
                - name: INFRANODE_DOCKER_HOST
        pipelining:
            description:
                - Send each module on the stdin of one command, instead of copying it to a
                  temporary file first (Ansible's pipelining, on by default here).
            type: boolean
            default: true
            env:
                - name: ANSIBLE_PIPELINING
            ini:
                - section: defaults
                  key: pipelining
                - section: connection
                  key: pipelining
            vars:
                - name: ansible_pipelining
                - name: ansible_infranode_pipelining
        channel:
            description:
                - Run commands in a long-lived shell in the node (the exec channel) instead of one
                  exec each.
            type: boolean
            default: true
            env:
                - name: INFRANODE_ANSIBLE_CHANNEL
            vars:
                - name: ansible_infranode_channel
        relay:
            description: The Unix socket of the converging process's channel relay (set by it).
            default: ''
            env:
                - name: INFRANODE_CHANNEL_RELAY
"""

display = Display()


class Connection(ConnectionBase):  # type: ignore[misc]  # ansible-core ships no py.typed
    """A connection to one node through pytest-infranode's engine."""

    transport = "infranode"
    has_pipelining = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine: Engine | None = None
        self._relay: RelayClient | None = None
        self._files: NodeFiles | None = None
        self._via = "exec"

    def _container(self) -> str:
        return str(self.get_option("remote_addr"))

    def _user(self) -> str | None:
        user = self.get_option("remote_user")
        return str(user) if user else None

    def _connect(self) -> Connection:
        if self._relay is None and self._files is None and self._engine is None:
            relay = self.get_option("relay") if self.get_option("channel") else ""
            if relay:
                try:
                    self._relay = RelayClient(relay, container=self._container(), user=self._user())
                    self._via = "relay"
                except RelayError as err:
                    display.vvv(f"INFRANODE RELAY UNAVAILABLE: {err}", host=self._container())
            if self._relay is None:
                self._connect_engine()
                if self.get_option("channel"):
                    self._via = "channel"
            display.vvv(f"INFRANODE CONNECT via {self._via}", host=self._container())
        self._connected = True
        return self

    def _connect_engine(self) -> Engine:
        if self._engine is None:
            from pytest_infranode.engine import Engine

            try:
                self._engine = Engine.connect(self.get_option("docker_host") or None)
            except InfranodeError as err:
                raise AnsibleConnectionFailure(str(err)) from err
            display.vvv(f"INFRANODE ENGINE {self._engine.describe()}", host=self._container())
        return self._engine

    def _node_files(self) -> NodeFiles:
        """This task's own channel (no relay): one shell for every command of the task."""
        if self._files is None:
            engine = self._connect_engine()
            channel = Channel(engine, self._container(), user=self._user())
            self._files = NodeFiles(engine, self._container(), self._user(), channel)
        return self._files

    def _fall_back(self, err: Exception) -> None:
        display.warning(f"infranode: no exec channel in {self._container()}, one exec per command: {err}")
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        self._via = "exec"
        self._connect_engine()

    def _run(self, cmd: str, stdin: bytes | None) -> ExecResult:
        """``cmd`` by ``/bin/sh -c`` in the node as the remote user, by the fastest way there is."""
        try:
            if self._via == "relay" and self._relay is not None:
                try:
                    return self._relay.run(cmd, stdin)
                except RelayError as err:
                    if not err.unavailable:
                        raise AnsibleConnectionFailure(str(err)) from None
                    self._fall_back(err)
            if self._via == "channel":
                try:
                    return self._node_files().run(cmd, stdin)
                except ChannelUnavailable as err:
                    self._fall_back(err)
            if stdin is not None:
                # One exec with stdin: a shell for this command alone, which reads it.
                engine = self._connect_engine()
                with Channel(engine, self._container(), user=self._user()) as once:
                    return once.run(cmd, stdin=stdin)
            return self._connect_engine().exec(self._container(), ["/bin/sh", "-c", cmd], user=self._user())
        except InfranodeError as err:
            raise AnsibleConnectionFailure(str(err)) from err

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC ({self._via}) {cmd}", host=self._container())
        result = self._run(cmd, in_data)
        return result.exit_status, result.stdout, result.stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT ({self._via}) {in_path} TO {out_path}", host=self._container())
        if not os.path.isfile(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        with open(in_path, "rb") as f:
            content = f.read()
        try:
            if self._via == "relay" and self._relay is not None:
                try:
                    self._relay.put(out_path, content)
                    return
                except RelayError as err:
                    if not err.unavailable:
                        raise AnsibleError(f"could not copy {in_path} to {out_path}: {err}") from None
                    self._fall_back(err)
            if self._via == "channel":
                try:
                    self._node_files().put(out_path, content)
                    return
                except ChannelUnavailable as err:
                    self._fall_back(err)
            self._put_by_archive(out_path, content)
        except InfranodeError as err:
            raise AnsibleError(f"could not copy {in_path} to {out_path}: {err}") from err

    def _put_by_archive(self, out_path: str, content: bytes) -> None:
        engine = self._connect_engine()
        directory, name = os.path.split(out_path)
        engine.put_files(self._container(), directory or "/", {name: (content, 0o600)})
        user = self._user()
        if not is_root(user):
            # The archive API writes files as root; the remote user must own what it uploads.
            result = engine.exec(self._container(), ["chown", str(user), out_path], user="root")
            if result.exit_status != 0:
                raise AnsibleError(
                    f"could not give {out_path} to {user}: {result.stderr.decode(errors='replace')}"
                )

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH ({self._via}) {in_path} TO {out_path}", host=self._container())
        if self._via == "relay" and self._relay is not None:
            try:
                result = self._relay.fetch(in_path)
            except RelayError as err:
                if not err.unavailable:
                    raise AnsibleConnectionFailure(str(err)) from None
                self._fall_back(err)
                result = self._run(f"cat -- {shlex.quote(in_path)}", None)
        else:
            result = self._run(f"cat -- {shlex.quote(in_path)}", None)
        if result.exit_status != 0:
            raise AnsibleFileNotFound(f"could not read {in_path}: {result.stderr.decode(errors='replace')}")
        with open(out_path, "wb") as f:
            f.write(result.stdout)

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        if self._files is not None:
            self._files.channel.close()
            self._files = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._connected = False
