"""The exec channel without Docker: framing, reply parsing, and the channel over a real local
shell (``local_exec.py``)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_infranode.channel import STDERR
from pytest_infranode.channel import STDOUT
from pytest_infranode.channel import Channel
from pytest_infranode.channel import FrameDecoder
from pytest_infranode.channel import ReplyParser
from pytest_infranode.channel import encode_request
from pytest_infranode.channel import runs_in_place
from pytest_infranode.channel import sh_quote
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.errors import ChannelError
from pytest_infranode.errors import ChannelUnavailable
from tests.unit.local_exec import LocalExecEngine
from tests.unit.local_exec import frame

NONCE = "0123456789abcdef0123456789abcdef"
TRICKY = [
    b"",
    b"plain",
    b"it's",
    b"'''",
    b"\\'\\",
    b"line1\nline2\n",
    b'$HOME `id` $(id) "q" ; & | > < * ?',
    b"\xff\xfe non-UTF-8 \x80",
    b"@@" + NONCE.encode(),
]


def sh(script: bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", "-c", script], input=stdin, capture_output=True, check=False)


# sh_quote / encode_request
@pytest.mark.parametrize("data", TRICKY)
def test_sh_quote_round_trips_through_a_real_shell(data: bytes) -> None:
    assert sh(b"printf %s " + sh_quote(data)).stdout == data


def test_encode_request_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode_request(b"echo \0", NONCE, 1)


def test_encode_request_is_one_line_apart_from_the_command() -> None:
    req = encode_request(b"echo a\necho b", NONCE, 7)
    assert req.endswith(b"\n")
    assert req.count(b"\n") == 2  # the command's own newline, inside quotes, and the end
    assert f"@@{NONCE}:S:7:".encode() in req
    assert f"@@{NONCE}:E:7:".encode() in req


def run_locally(
    commands: Sequence[bytes], *, in_place: bool = False, env: Mapping[str, str] | None = None
) -> list[ExecResult]:
    """Send requests to a local sh as the channel would, and parse its replies."""
    script = b"".join(encode_request(c, NONCE, i, in_place=in_place) for i, c in enumerate(commands, 1))
    done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, check=False)
    results = []
    for i in range(1, len(commands) + 1):
        parser = ReplyParser(NONCE, i)
        parser.feed(STDOUT, done.stdout)
        parser.feed(STDERR, done.stderr)
        results.append(parser.result())
    return results


def test_requests_run_in_a_real_shell() -> None:
    results = run_locally(
        [
            b"echo out; echo err >&2; exit 3",
            b"printf '\\377\\000x'",
            b"cd /; export LEAK=1; X=2; exec echo replaced",
            b'echo "${LEAK-none} ${X-none}"; pwd',
            b"cat; echo read-nothing",
            b"syntax error (",
            b"echo after",
            b"trap 'echo trapped' EXIT; false",
        ]
    )
    assert results[0] == ExecResult(3, b"out\n", b"err\n")
    assert results[1] == ExecResult(0, b"\xff\x00x", b"")
    assert results[2] == ExecResult(0, b"replaced\n", b"")
    assert results[3].stdout.split(b"\n")[0] == b"none none"
    assert results[4] == ExecResult(0, b"read-nothing\n", b"")
    assert results[5].exit_status == 2
    assert b"Syntax error" in results[5].stderr or b"syntax error" in results[5].stderr
    assert results[6] == ExecResult(0, b"after\n", b"")
    assert results[7] == ExecResult(1, b"trapped\n", b"")


IN_PLACE = [
    b"true",
    b"false",
    b"test -e /etc/passwd",
    b"[ -e '/etc/a file' ]",
    b"stat -c '%a %U' /etc/passwd",
    b"dpkg-query -W -f='${Status} ${Version}' nginx",
    b"systemctl is-active nginx.service",
    b"/usr/bin/env FOO=1 sh",
    b"ls -la /etc/*.conf",
    b"  printf %s\tx  ",
]
SUBSHELL = [
    b"",
    b"   ",
    b"cd /tmp",
    b"export A=1",
    b"A=1 true",
    b"set -e",
    b"read x",
    b"exit 3",
    b"exec true",
    b"kill $$",
    b"kill 1",
    b". /etc/profile",
    b"source /etc/profile",
    b"umask 077",
    b"trap 'echo x' EXIT",
    b"wait",
    b"hash -r",
    b"command cd /",
    b"if true; then :; fi",
    b"! true",
    b"true; cd /",
    b"true && cd /",
    b"true | cat",
    b"true &",
    b"true >/tmp/x",
    b"true </etc/passwd",
    b"echo $HOME",
    b"echo ${x:=1}",
    b"echo $(cd /)",
    b"echo `cd /`",
    b'echo "a"',
    b"echo 'a",
    b"echo 'a\nb'",
    b"echo a\\ b",
    b"c? x",
    b"f() { :; }",
    b"{ cd /; }",
    b"(cd /)",
    b"true\nfalse",
    b"echo 'it'\\''s'",
]


@pytest.mark.parametrize("command", IN_PLACE)
def test_simple_commands_run_in_place(command: bytes) -> None:
    assert runs_in_place(command)


@pytest.mark.parametrize("command", SUBSHELL)
def test_commands_that_could_change_the_shell_take_the_subshell(command: bytes) -> None:
    assert not runs_in_place(command)


def test_a_request_runs_in_place_only_when_asked_and_allowed() -> None:
    assert encode_request(b"true", NONCE, 1, in_place=True).startswith(b"printf ")
    assert encode_request(b"true", NONCE, 1).startswith(b"( printf ")
    assert encode_request(b"cd /", NONCE, 1, in_place=True).startswith(b"( printf ")


def test_in_place_and_subshell_requests_give_the_same_results() -> None:
    commands = [c for c in IN_PLACE if not c.startswith((b"dpkg", b"systemctl", b"/usr/bin/env"))]
    commands += [b"no-such-command-here", b"cat", b"test", b"printf %d notanumber", b"pwd"]
    assert run_locally(commands, in_place=True) == run_locally(commands)


def test_commands_that_change_the_shell_still_do_not_leak_with_in_place_on() -> None:
    commands = [b"cd /", b"export A=1", b"B=2 true", b"umask 077", b"set -u", b"true", b"cat"]
    probe = b'echo "${A-unset} ${B-unset} ${C-unset}"; pwd; umask'
    in_place = run_locally([*commands, probe], in_place=True)
    assert in_place == run_locally([*commands, probe])
    said, cwd, mask = in_place[-1].stdout.split(b"\n")[:3]
    assert said == b"unset unset unset"
    assert cwd == str(Path.cwd()).encode() != b"/"
    assert mask != b"0077"


def test_an_in_place_command_does_not_leave_its_path_remembered(tmp_path: Path) -> None:
    """A program installed earlier in PATH after a command found the old one is the one run next,
    as with `sh -c` (the shell would otherwise remember the old path)."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "tool").write_text("#!/bin/sh\necho second\n")
    (second / "tool").chmod(0o755)
    env = {"PATH": f"{first}:{second}:/usr/bin:/bin"}
    install = f"printf '#!/bin/sh\\necho first\\n' >{first}/tool; chmod 755 {first}/tool".encode()
    results = run_locally([b"tool", install, b"tool"], in_place=True, env=env)
    assert [r.stdout for r in results] == [b"second\n", b"", b"first\n"]


@pytest.mark.parametrize("data", TRICKY)
def test_tricky_commands_print_themselves(data: bytes) -> None:
    (result,) = run_locally([b"printf %s " + sh_quote(data)])
    assert result == ExecResult(0, data, b"")


# FrameDecoder
def test_frame_decoder_handles_frames_cut_anywhere() -> None:
    stream = frame(1, b"hello") + frame(2, b"") + frame(2, b"err") + frame(1, b"x" * 70000)
    for cut in range(0, len(stream), 7):
        decoder = FrameDecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [(n, p) for n, p in got if p] == [(1, b"hello"), (2, b"err"), (1, b"x" * 70000)]
        assert decoder.pending == 0


def test_frame_decoder_holds_an_incomplete_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame(1, b"abc")[:5]) == []
    assert decoder.pending == 5


# ReplyParser
def reply(seq: int, out: bytes, err: bytes, status: int = 0) -> tuple[bytes, bytes]:
    m = f"@@{NONCE}"
    return (
        f"{m}:S:{seq}:\n".encode() + out + f"{m}:E:{seq}:{status}\n".encode(),
        f"{m}:S:{seq}:\n".encode() + err + f"{m}:E:{seq}:\n".encode(),
    )


def test_parser_drops_what_comes_before_the_start_and_after_the_end() -> None:
    out, err = reply(3, b"body\n", b"warn\n", 5)
    parser = ReplyParser(NONCE, 3)
    parser.feed(STDOUT, b"late output of a background job\n" + out + b"more late output")
    parser.feed(STDERR, b"late" + err)
    assert parser.done
    assert parser.result() == ExecResult(5, b"body\n", b"warn\n")


def test_parser_ignores_markers_of_other_commands() -> None:
    out, err = reply(1, b"one", b"")
    parser = ReplyParser(NONCE, 10)
    parser.feed(STDOUT, out)
    parser.feed(STDERR, err)
    assert not parser.started
    assert not parser.done


def test_parser_finds_markers_cut_at_every_byte() -> None:
    out, err = reply(2, b"abc\x00\xff", b"e", 1)
    for cut in range(len(out) + 1):
        parser = ReplyParser(NONCE, 2)
        parser.feed(STDOUT, out[:cut])
        parser.feed(STDOUT, out[cut:])
        for byte in err:
            parser.feed(STDERR, bytes([byte]))
        assert parser.result() == ExecResult(1, b"abc\x00\xff", b"e")


def test_parser_is_not_done_until_both_streams_end() -> None:
    out, err = reply(1, b"o", b"e")
    parser = ReplyParser(NONCE, 1)
    parser.feed(STDOUT, out)
    assert parser.started
    assert not parser.done
    with pytest.raises(ValueError, match="not complete"):
        parser.result()
    parser.feed(STDERR, err)
    assert parser.done


def test_parser_reads_a_large_body_in_chunks() -> None:
    body = bytes(range(256)) * 50_000  # 12.8 MB
    out, err = reply(1, body, b"")
    parser = ReplyParser(NONCE, 1)
    for i in range(0, len(out), 65536):
        parser.feed(STDOUT, out[i : i + 65536])
    parser.feed(STDERR, err)
    assert parser.result().stdout == body


def test_parser_rejects_a_bad_trailer() -> None:
    m = f"@@{NONCE}"
    parser = ReplyParser(NONCE, 1)
    parser.feed(STDOUT, f"{m}:S:1:\n{m}:E:1:oops\n".encode())
    parser.feed(STDERR, f"{m}:S:1:\n{m}:E:1:\n".encode())
    with pytest.raises(ValueError, match="bad exit status"):
        parser.result()


# Channel over a real shell on this machine (see tests/unit/local_exec.py)
@pytest.fixture
def local() -> Iterator[LocalExecEngine]:
    engine = LocalExecEngine()
    yield engine
    engine.close()


def channel(engine: LocalExecEngine) -> Channel:
    return Channel(engine, "c0ffee", where="node test")


def test_channel_runs_commands_in_one_shell(local: LocalExecEngine) -> None:
    ch = channel(local)
    assert ch.run("echo a; echo b >&2; exit 4") == ExecResult(4, b"a\n", b"b\n")
    assert ch.run("sleep 30 >/dev/null 2>&1 & echo started").stdout == b"started\n"
    assert ch.run(b"printf '\\200'").stdout == b"\x80"
    assert ch.shells_started == 1
    assert ch.shell_pid == local.shells[0].proc.pid
    ch.close()
    assert local.shells[0].closed


def test_channel_gives_a_killed_shell_its_status_and_starts_another(local: LocalExecEngine) -> None:
    ch = channel(local)
    result = ch.run("echo bye; kill -9 $$")
    assert result.exit_status == 137
    assert result.stdout == b"bye\n"
    assert ch.run("echo again").stdout == b"again\n"
    assert ch.shells_started == 2
    ch.close()


def test_channel_timeout_kills_the_command_and_keeps_the_shell(local: LocalExecEngine) -> None:
    ch = channel(local)
    with pytest.raises(ChannelError, match=r"longer than its timeout of 0\.5 s") as info:
        ch.run("echo partial; sleep 60; sleep 60", timeout=0.5)
    assert "partial" in str(info.value)
    assert local.execs[-1][-1] == str(ch.shell_pid)
    assert ch.run("echo alive").stdout == b"alive\n"
    assert ch.shells_started == 1
    ch.close()


def test_channel_serialises_threads(local: LocalExecEngine) -> None:
    ch = channel(local)
    wrong: list[str] = []

    def worker(n: int) -> None:
        for i in range(25):
            got = ch.run(f"echo {n}-{i}; echo {n}-{i} >&2")
            if got != ExecResult(0, f"{n}-{i}\n".encode(), f"{n}-{i}\n".encode()):
                wrong.append(repr(got))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    ch.close()


def test_a_shell_that_does_not_answer_makes_the_channel_unavailable() -> None:
    engine = LocalExecEngine(shell_argv=["/bin/cat"])  # echoes the request back: no markers
    ch = Channel(engine, "c0ffee", where="node test", start_timeout=0.5)
    try:
        with pytest.raises(ChannelUnavailable, match="did not answer"):
            ch.run("true")
        with pytest.raises(ChannelUnavailable):  # remembered: not tried again
            ch.run("true")
        assert len(engine.shells) == 1
    finally:
        engine.close()


def test_a_shell_that_exits_at_once_makes_the_channel_unavailable() -> None:
    engine = LocalExecEngine(shell_argv=["/bin/sh", "-c", "echo 'exec: no such file' >&2; exit 126"])
    ch = Channel(engine, "c0ffee", where="node test")
    try:
        with pytest.raises(ChannelUnavailable, match="did not answer") as info:
            ch.run("true")
        assert "no such file" in str(info.value)
    finally:
        engine.close()


def test_a_dead_node_is_a_channel_error(local: LocalExecEngine) -> None:
    ch = channel(local)
    assert ch.run("true").exit_status == 0
    local.state = "exited"
    with pytest.raises(ChannelError, match=r"stopped while a command ran .*exited") as info:
        ch.run("echo last words; kill -9 $$")
    assert not isinstance(info.value, ChannelUnavailable)
    with pytest.raises(ChannelError, match="not running") as info:
        ch.run("true")
    assert not isinstance(info.value, ChannelUnavailable)
