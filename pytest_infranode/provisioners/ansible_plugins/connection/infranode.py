"""Ansible connection plugin ``infranode``: runs tasks in a node through the Docker API.

No sshd in the node and no docker CLI on the runner: commands go through the exec API and files
through the archive API, both by way of pytest-infranode's :class:`Engine` (the only code that
imports the Docker SDK; this plugin does not). The ansible provisioner puts this directory on
``ANSIBLE_CONNECTION_PLUGINS`` and writes ``ansible_connection: infranode`` into the inventory.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.errors import AnsibleError
from ansible.errors import AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from pytest_infranode.engine import Engine
from pytest_infranode.errors import InfranodeError

DOCUMENTATION = """
    name: infranode
    short_description: run tasks in a pytest-infranode node through the Docker API
    description:
        - Runs commands with the Docker exec API and copies files with the archive API,
          through pytest-infranode's engine. Needs no sshd in the node and no docker CLI.
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
"""

display = Display()


class Connection(ConnectionBase):  # type: ignore[misc]  # ansible-core ships no py.typed
    """A connection to one node through pytest-infranode's engine."""

    transport = "infranode"
    has_pipelining = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine: Engine | None = None

    def _container(self) -> str:
        return str(self.get_option("remote_addr"))

    def _user(self) -> str | None:
        user = self.get_option("remote_user")
        return str(user) if user else None

    def _connect(self) -> Connection:
        if self._engine is None:
            try:
                self._engine = Engine.connect(self.get_option("docker_host") or None)
            except InfranodeError as err:
                raise AnsibleConnectionFailure(str(err)) from err
            display.vvv(f"INFRANODE CONNECT {self._engine.describe()}", host=self._container())
        self._connected = True
        return self

    def _exec(self, argv: list[str], *, user: str | None = None) -> tuple[int, bytes, bytes]:
        assert self._engine is not None
        try:
            result = self._engine.exec(self._container(), argv, user=user)
        except InfranodeError as err:
            raise AnsibleConnectionFailure(str(err)) from err
        return result.exit_status, result.stdout, result.stderr

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if in_data is not None:
            raise AnsibleError("the infranode connection does not support pipelining")
        display.vvv(f"EXEC {cmd}", host=self._container())
        return self._exec(["/bin/sh", "-c", cmd], user=self._user())

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self._container())
        if not os.path.isfile(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        with open(in_path, "rb") as f:
            content = f.read()
        assert self._engine is not None
        directory, name = posixpath.split(out_path)
        try:
            self._engine.put_files(self._container(), directory or "/", {name: (content, 0o600)})
        except InfranodeError as err:
            raise AnsibleConnectionFailure(str(err)) from err
        user = self._user()
        if user and user not in ("root", "0"):
            # The archive API writes files as root; the remote user must own what it uploads.
            status, _, err_out = self._exec(["chown", user, out_path], user="root")
            if status != 0:
                raise AnsibleError(f"could not give {out_path} to {user}: {err_out.decode(errors='replace')}")

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self._container())
        status, content, err_out = self._exec(["cat", "--", in_path], user=self._user())
        if status != 0:
            raise AnsibleFileNotFound(f"could not read {in_path}: {err_out.decode(errors='replace')}")
        with open(out_path, "wb") as f:
            f.write(content)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._connected = False
