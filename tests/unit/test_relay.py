"""The channel relay (``provisioners/_relay.py``) and the channel's stdin, against real local
shells (``local_exec.py``): what ansible-playbook's workers send through it comes back exact."""

from __future__ import annotations

import os
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_infranode.channel import Channel
from pytest_infranode.channel import encode_request
from pytest_infranode.provisioners import _relay
from pytest_infranode.provisioners._relay import ChannelRelay
from pytest_infranode.provisioners._relay import RelayClient
from pytest_infranode.provisioners._relay import RelayError
from tests.unit.local_exec import LocalExecEngine


class LocalFileEngine(LocalExecEngine):
    """This machine, with the archive API's copy-in as a plain write."""

    def __init__(self) -> None:
        super().__init__()
        self.archive_puts: list[str] = []

    def put_files(self, container_id: str, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        for name, (content, mode) in files.items():
            path = Path(dest_dir, name)
            path.write_bytes(content)
            path.chmod(mode)
            self.archive_puts.append(str(path))


@pytest.fixture
def engine() -> Iterator[LocalFileEngine]:
    eng = LocalFileEngine()
    yield eng
    eng.close()


@pytest.fixture
def relay(engine: LocalFileEngine) -> Iterator[ChannelRelay]:
    with ChannelRelay(engine, {"node-a": "node a"}) as r:
        yield r


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"one line\n",
        b"no newline at the end",
        b"'quotes' \"and\" $HOME `x` \\ %s %%\n",
        os.urandom(300).replace(b"\0", b"x"),
    ],
)
def test_a_command_reads_its_stdin_exactly(engine: LocalFileEngine, data: bytes) -> None:
    with Channel(engine, "local") as channel:
        result = channel.run("cat", stdin=data)
        assert (result.exit_status, result.stdout) == (0, data)
        # the next command reads end of file again, not the protocol stream
        assert channel.run("cat").stdout == b""


def test_stdin_is_refused_with_nul_and_never_runs_in_place() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_request(b"cat", "n", 1, stdin=b"a\0b")
    assert encode_request(b"cat", "n", 1, in_place=True, stdin=b"x").startswith(b"( ")


def test_the_exit_status_is_the_commands_with_stdin(engine: LocalFileEngine) -> None:
    with Channel(engine, "local") as channel:
        result = channel.run("read line; echo got $line; exit 4", stdin=b"hello\n")
        assert (result.exit_status, result.stdout) == (4, b"got hello\n")


def test_the_relay_runs_commands_in_one_shell_across_connections(
    engine: LocalFileEngine, relay: ChannelRelay
) -> None:
    for _ in range(3):  # three tasks: three connections, one shell
        client = RelayClient(relay.address, container="node-a", user=None)
        result = client.run("echo out; echo err >&2; exit 3")
        assert (result.exit_status, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
        assert client.run("cat", b"fed").stdout == b"fed"
        client.close()
    assert relay.shells_started == 1
    assert engine.shell_users == [None]


def test_the_relay_opens_a_shell_per_user(engine: LocalFileEngine, relay: ChannelRelay) -> None:
    for user in ("deploy", "app", "deploy"):
        client = RelayClient(relay.address, container="node-a", user=user)
        assert client.run("true").exit_status == 0
        client.close()
    assert engine.shell_users == ["deploy", "app"]


@pytest.mark.parametrize("size", [0, 1, 4096, _relay.INLINE_PUT, _relay.INLINE_PUT + 1, 3 * 1024 * 1024])
def test_files_go_in_and_come_out_exact(
    engine: LocalFileEngine, relay: ChannelRelay, tmp_path: Path, size: int
) -> None:
    content = os.urandom(size)
    target = tmp_path / "copied"
    client = RelayClient(relay.address, container="node-a", user=None)
    client.put(str(target), content)
    assert target.read_bytes() == content
    assert target.stat().st_mode & 0o777 == 0o600
    fetched = client.fetch(str(target))
    assert (fetched.exit_status, fetched.stdout) == (0, content)
    client.close()
    # large files take the archive API, small ones the channel
    assert engine.archive_puts == ([str(target)] if size > _relay.INLINE_PUT else [])


def test_a_file_that_cannot_be_written_is_an_error_naming_it(relay: ChannelRelay, tmp_path: Path) -> None:
    client = RelayClient(relay.address, container="node-a", user=None)
    missing = tmp_path / "no-such-dir" / "f"
    with pytest.raises(RelayError, match=f"could not write {missing}") as info:
        client.put(str(missing), b"data")
    assert not info.value.unavailable
    assert client.fetch(str(missing)).exit_status != 0
    client.close()


def test_the_relay_serves_only_the_nodes_of_its_run(relay: ChannelRelay) -> None:
    client = RelayClient(relay.address, container="someone-elses", user=None)
    with pytest.raises(RelayError, match="'someone-elses' is not a node of this run"):
        client.run("true")
    client.close()


def test_a_closed_relay_is_unavailable_and_leaves_nothing(engine: LocalFileEngine) -> None:
    relay = ChannelRelay(engine, {"node-a": "node a"})
    client = RelayClient(relay.address, container="node-a", user=None)
    assert client.run("true").exit_status == 0
    relay.close()
    relay.close()
    assert not Path(relay.address).parent.exists()
    assert all(shell.closed for shell in engine.shells)
    with pytest.raises(RelayError) as info:
        RelayClient(relay.address, container="node-a", user=None)
    assert info.value.unavailable
    with pytest.raises(RelayError):
        client.run("true")
    client.close()


def test_a_node_without_a_shell_is_unavailable_through_the_relay() -> None:
    engine = LocalFileEngine()
    engine.shell_argv = ["false"]  # a shell that ends at once: not a POSIX shell
    with ChannelRelay(engine, {"node-a": "node a"}) as relay:
        client = RelayClient(relay.address, container="node-a", user=None)
        with pytest.raises(RelayError) as info:
            client.run("true")
        assert info.value.unavailable
        client.close()
