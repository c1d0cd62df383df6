"""The ``infranode`` connection plugin as ansible-playbook's workers use it, over a channel relay
into real local shells (``local_exec.py``): pipelined commands, files in and out, the options."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader
from ansible.plugins.loader import init_plugin_loader

from pytest_infranode.provisioners._relay import RELAY_ENV
from pytest_infranode.provisioners._relay import ChannelRelay
from pytest_infranode.provisioners.ansible import PLUGINS
from tests.unit.test_relay import LocalFileEngine


@pytest.fixture(scope="module", autouse=True)
def _plugins() -> None:
    init_plugin_loader()
    connection_loader.add_directory(str(PLUGINS / "connection"))


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChannelRelay]:
    engine = LocalFileEngine()
    with ChannelRelay(engine, {"node-a": "node a"}) as r:
        monkeypatch.setenv(RELAY_ENV, r.address)
        yield r
    engine.close()


def connection(host: str = "node-a", **variables: Any) -> Any:
    conn = connection_loader.get("infranode", PlayContext(), None)
    conn.set_options(var_options={"ansible_host": host, **variables})
    return conn


def test_pipelining_and_the_channel_are_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = connection()
    assert conn.has_pipelining
    assert conn.get_option("pipelining") is True
    assert conn.get_option("channel") is True
    assert (
        connection(ansible_pipelining=False, ansible_infranode_channel=False).get_option("channel") is False
    )
    monkeypatch.setenv("ANSIBLE_PIPELINING", "false")
    assert connection().get_option("pipelining") is False


def test_tasks_share_one_shell_through_the_relay(relay: ChannelRelay) -> None:
    for _ in range(3):  # each task: a new connection in a new worker
        conn = connection()
        conn._connect()
        # a pipelined module: the command reads it on its stdin
        assert conn.exec_command("cat; echo done >&2", in_data=b"print('module')\n") == (
            0,
            b"print('module')\n",
            b"done\n",
        )
        assert conn.exec_command("exit 7")[0] == 7
        conn.close()
    assert relay.shells_started == 1


@pytest.mark.parametrize("size", [0, 3000, 2 * 1024 * 1024])
def test_files_in_and_out_through_the_relay(relay: ChannelRelay, tmp_path: Path, size: int) -> None:
    content = os.urandom(size)
    (tmp_path / "in").write_bytes(content)
    conn = connection()
    conn._connect()
    conn.put_file(str(tmp_path / "in"), str(tmp_path / "node-side"))
    conn.fetch_file(str(tmp_path / "node-side"), str(tmp_path / "out"))
    conn.close()
    assert (tmp_path / "node-side").read_bytes() == content
    assert (tmp_path / "out").read_bytes() == content


def test_a_container_the_relay_does_not_serve_is_a_connection_failure(relay: ChannelRelay) -> None:
    conn = connection(host="not-a-node")
    conn._connect()
    with pytest.raises(AnsibleConnectionFailure, match="'not-a-node' is not a node of this run"):
        conn.exec_command("true")
    conn.close()
