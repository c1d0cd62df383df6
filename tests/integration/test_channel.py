"""The exec channel against a real debian-12 node: every correctness case, and testinfra parity."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import testinfra

from pytest_infranode.backend import NodeBackend
from pytest_infranode.backend import make_host
from pytest_infranode.channel import Channel
from pytest_infranode.engine import Engine
from pytest_infranode.errors import ChannelError
from pytest_infranode.errors import ChannelUnavailable
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog

# Generous: a hang shows up as a failed test, not as a stuck run.
SAFETY = 120.0


def make_node(engine: Engine, tag: str) -> Node:
    platform = Catalog().get("debian-12")
    image, _cached = engine.prepared_image(platform, lambda _msg: None)
    node = Node(engine, platform, session_id=f"chan{tag}{uuid.uuid4().hex[:8]}", image=image)
    node.create()
    return node


@pytest.fixture(scope="module")
def node(engine: Engine) -> Iterator[Node]:
    made = make_node(engine, "sys")
    try:
        made.start(boot_timeout=120)
        yield made
    finally:
        made.remove()


@pytest.fixture
def channel(engine: Engine, node: Node) -> Iterator[Channel]:
    with Channel(engine, node.container_id, where=node.where) as ch:
        yield ch


def run(ch: Channel, command: str) -> tuple[int, bytes, bytes]:
    r = ch.run(command, timeout=SAFETY)
    return r.exit_status, r.stdout, r.stderr


def test_status_stdout_and_stderr_are_kept_apart(channel: Channel) -> None:
    assert run(channel, "echo out; echo err >&2; echo out2; exit 3") == (3, b"out\nout2\n", b"err\n")
    assert run(channel, "printf 'no newline'") == (0, b"no newline", b"")
    assert run(channel, "false") == (1, b"", b"")
    assert run(channel, "no-such-command")[0] == 127


def test_binary_and_non_utf8_output(channel: Channel) -> None:
    assert run(channel, r"printf '\377\000\200\n\r'") == (0, b"\xff\x00\x80\n\r", b"")
    status, blob, _ = run(channel, "head -c 1000000 /dev/urandom | tee /tmp/blob")
    _, digest, _ = run(channel, "sha256sum </tmp/blob")
    assert status == 0
    assert len(blob) == 1_000_000
    assert digest.split()[0].decode() == hashlib.sha256(blob).hexdigest()


def test_large_outputs_on_both_streams(channel: Channel) -> None:
    status, out, err = run(
        channel,
        "head -c 12000000 /dev/urandom >/tmp/big; cat /tmp/big; cat /tmp/big >&2; sha256sum </tmp/big >&2",
    )
    assert status == 0
    assert len(out) == 12_000_000
    assert err[:12_000_000] == out
    assert err[12_000_000:].split()[0].decode() == hashlib.sha256(out).hexdigest()


def test_commands_reading_stdin_get_end_of_file(channel: Channel) -> None:
    assert run(channel, "cat; echo done") == (0, b"done\n", b"")
    assert run(channel, 'read x; echo "read=$? x=$x"') == (0, b"read=1 x=\n", b"")
    assert run(channel, "head -c 10 /dev/stdin | wc -c") == (0, b"0\n", b"")
    assert channel.shells_started == 1


def test_exit_exec_and_syntax_errors_leave_the_shell_alone(channel: Channel) -> None:
    assert run(channel, "exit 7") == (7, b"", b"")
    assert run(channel, "exec sh -c 'echo replaced; exit 5'") == (5, b"replaced\n", b"")
    status, _, err = run(channel, "echo 'unbalanced")
    assert status == 2
    assert b"Syntax error" in err
    assert run(channel, "echo 'it'\\''s' \"$((1+2))\"") == (0, b"it's 3\n", b"")
    assert run(channel, "set -e; trap 'echo trapped' EXIT; false; echo not-here") == (1, b"trapped\n", b"")
    assert channel.shells_started == 1


@pytest.mark.parametrize(("command", "status"), [("kill -9 $$", 137), ("kill $$", 143), ("kill 0", 143)])
def test_a_command_that_kills_the_shell(channel: Channel, command: str, status: int) -> None:
    assert run(channel, "true")[0] == 0
    assert run(channel, f"echo before; {command}") == (status, b"before\n", b"")
    assert run(channel, "echo after") == (0, b"after\n", b"")
    assert channel.shells_started == 2


def test_background_processes_keep_running_and_stay_out_of_later_output(channel: Channel) -> None:
    status, out, _ = run(channel, "sleep 300 & echo $!")
    assert status == 0
    pid = out.decode().strip()
    assert run(channel, f"kill -0 {pid} && echo running") == (0, b"running\n", b"")
    assert run(channel, "(sleep 0.3; echo late; echo late >&2) & echo now") == (0, b"now\n", b"")
    time.sleep(0.8)
    assert run(channel, "echo next") == (0, b"next\n", b"")
    run(channel, f"kill {pid}")
    assert channel.shells_started == 1


def test_environment_and_directory_do_not_leak(channel: Channel) -> None:
    run(channel, "cd /tmp; export LEAK=1; NOTEXPORTED=2; umask 077; set -u; alias ll=ls; f() { :; }")
    assert run(channel, 'pwd; echo "${LEAK-unset} ${NOTEXPORTED-unset}"; umask') == (
        0,
        b"/\nunset unset\n0022\n",
        b"",
    )
    assert run(channel, "echo $UNDEFINED_IS_FINE; type f >/dev/null 2>&1 || echo no-function") == (
        0,
        b"\nno-function\n",
        b"",
    )


def test_timeout_kills_the_command_and_keeps_the_channel(channel: Channel) -> None:
    with pytest.raises(ChannelError, match="longer than its timeout") as info:
        channel.run("echo started; sleep 100; echo never", timeout=1.0)
    assert "started" in str(info.value)
    assert not isinstance(info.value, ChannelUnavailable)
    assert run(channel, "pgrep -fx 'sleep 100' || echo gone") == (0, b"gone\n", b"")
    assert run(channel, "echo still usable") == (0, b"still usable\n", b"")
    assert channel.shells_started == 1


def test_simple_commands_run_in_the_shell_itself(channel: Channel) -> None:
    """A command that cannot change the shell skips the subshell, and behaves as `sh -c` would."""
    assert run(channel, "true") == (0, b"", b"")
    assert channel.in_place
    assert run(channel, "test -e /etc/passwd") == (0, b"", b"")
    assert run(channel, "[ -d /etc/passwd ]") == (1, b"", b"")
    assert run(channel, "stat -c '%U %a' /etc/passwd") == (0, b"root 644\n", b"")
    assert run(channel, "cat") == (0, b"", b"")  # stdin: end of file, not the protocol
    status, _, err = run(channel, "no-such-command")
    assert status == 127
    assert b"no-such-command: not found" in err
    status, out, _ = run(channel, "sh -c 'echo $$'")
    assert status == 0
    assert out.strip().isdigit()
    assert out.strip().decode() != str(channel.shell_pid)
    assert channel.shells_started == 1


def test_a_program_installed_earlier_in_path_is_found(channel: Channel) -> None:
    """The shell does not remember where an in-place command found its program."""
    try:
        for where, says in (("/usr/bin", "old"), ("/usr/local/bin", "new")):
            tool = f"{where}/infranode-t"
            assert run(channel, f"printf '#!/bin/sh\\necho {says}\\n' >{tool}; chmod 755 {tool}")[0] == 0
            if says == "old":
                assert run(channel, "infranode-t") == (0, b"old\n", b"")
        assert run(channel, "infranode-t") == (0, b"new\n", b"")
    finally:
        run(channel, "rm -f /usr/bin/infranode-t /usr/local/bin/infranode-t")


def test_timeout_kills_an_in_place_command_and_keeps_the_channel(channel: Channel) -> None:
    with pytest.raises(ChannelError, match="longer than its timeout"):
        channel.run("sleep 100", timeout=1.0)
    assert run(channel, "pgrep -fx 'sleep 100' || echo gone") == (0, b"gone\n", b"")
    assert run(channel, "echo still usable") == (0, b"still usable\n", b"")
    assert channel.shells_started == 1


def test_several_threads_share_one_channel(channel: Channel) -> None:
    wrong: list[str] = []

    def worker(n: int) -> None:
        for i in range(25):
            got = run(channel, f"echo {n}-{i}; echo {i}-{n} >&2; exit {i % 3}")
            if got != (i % 3, f"{n}-{i}\n".encode(), f"{i}-{n}\n".encode()):
                wrong.append(f"{n}-{i}: {got!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY)
    assert wrong == []
    assert channel.shells_started == 1


def test_the_node_dying_mid_command_is_a_clear_error(engine: Engine) -> None:
    doomed = make_node(engine, "die")
    try:
        doomed.start(boot_timeout=120)
        ch = doomed.channel
        assert ch is not None
        assert run(ch, "echo up") == (0, b"up\n", b"")
        killer = threading.Timer(1.0, engine.kill_container, args=(doomed.container_id,))
        killer.start()
        try:
            with pytest.raises(ChannelError) as info:
                ch.run("echo going; sleep 100", timeout=SAFETY)
        finally:
            killer.join()
        assert not isinstance(info.value, ChannelUnavailable)
        assert "the node stopped while a command ran in it" in str(info.value)
        assert "going" in str(info.value)
        with pytest.raises(ChannelError, match="the node is not running") as again:
            ch.run("true", timeout=SAFETY)
        assert not isinstance(again.value, ChannelUnavailable)
    finally:
        doomed.remove()
    assert doomed.channel is None


def test_backend_falls_back_to_one_exec_per_command_and_says_so(node: Node) -> None:
    twin = Node(node.engine, node.platform, session_id=node.session_id, image=node.image)
    twin.container_id = node.container_id
    twin.state = "booted"
    twin.channel_shell = "/no/such/sh"
    backend = NodeBackend(twin)
    with pytest.warns(InfranodeWarning, match=r"/no/such/sh .*own exec instead") as warned:
        first = backend.run("echo %s; exit 4", "fallback")
    assert "no such file or directory" in str(warned[0].message)
    assert (first.rc, first.stdout, first.stderr) == (4, "fallback\n", "")
    second = backend.run("echo again")  # no second warning (filterwarnings = error would raise)
    assert second.stdout == "again\n"
    assert twin.channel is not None
    assert twin.channel.unavailable is not None
    twin.close()


def test_host_uses_the_channel(node: Node) -> None:
    host = make_host(node)
    assert host.run("echo hi").stdout == "hi\n"
    assert node.channel is not None
    assert node.channel.is_open
    assert host.file("/etc/passwd").exists


# Parity: the same spec through our backend and through testinfra's docker:// backend
SPEC: dict[str, Callable[[Any], object]] = {
    "run true": lambda h: h.run("true").rc,
    "run output": lambda h: (lambda r: (r.rc, r.stdout, r.stderr))(h.run("echo out; echo err >&2; exit 3")),
    "run quoted args": lambda h: h.run("printf %s %s %s %s", "%s|", "a b", "it's", "$HOME").stdout,
    "run binary": lambda h: h.run(r"printf '\377\000x'").stdout_bytes,
    "run env": lambda h: h.run("env | sort").stdout,
    "run cwd and umask": lambda h: h.run("pwd; umask; id").stdout,
    "run stdin": lambda h: h.run("cat; echo eof").stdout,
    "check_output": lambda h: h.check_output("uname -s"),
    "exists": lambda h: h.exists("systemctl"),
    "file passwd": lambda h: (lambda f: (f.exists, f.is_file, f.user, f.group, f.mode, f.size))(
        h.file("/etc/passwd")
    ),
    "file content": lambda h: h.file("/etc/os-release").content_string,
    "file missing": lambda h: h.file("/nonexistent").exists,
    "file directory": lambda h: (h.file("/etc").is_directory, sorted(h.file("/etc/systemd").listdir())),
    "file symlink": lambda h: (h.file("/bin").is_symlink, h.file("/bin").linked_to),
    "package systemd": lambda h: (lambda p: (p.is_installed, p.version))(h.package("systemd")),
    "package missing": lambda h: h.package("nginx").is_installed,
    "service journald": lambda h: h.service("systemd-journald").is_running,
    "service missing": lambda h: h.service("nosuchservice").is_running,
    "user root": lambda h: (lambda u: (u.exists, u.uid, u.gid, u.home, u.shell, u.groups))(h.user("root")),
    "group": lambda h: (h.group("root").exists, h.group("nosuchgroup").exists),
    "system info": lambda h: (h.system_info.type, h.system_info.distribution, h.system_info.release),
    "sysctl": lambda h: h.sysctl("kernel.ostype"),
    "process": lambda h: h.process.get(pid=1).comm,
    "mount": lambda h: h.mount_point("/").exists,
    "environment": lambda h: sorted(k for k in h.environment() if k not in ("HOSTNAME",)),
}


def outcome(check: Callable[[Any], object], host: Any) -> object:
    try:
        return check(host)
    except Exception as exc:  # the failure itself is part of the outcome to compare
        return f"raised {type(exc).__name__}: {exc}"


def test_same_spec_same_results_as_testinfra_docker_backend(node: Node) -> None:
    ours = make_host(node)
    theirs = testinfra.get_host(f"docker://{node.name}")
    got_ours = {name: outcome(check, ours) for name, check in SPEC.items()}
    got_theirs = {name: outcome(check, theirs) for name, check in SPEC.items()}
    assert got_ours == got_theirs
    raised = {k: v for k, v in got_ours.items() if str(v).startswith("raised")}
    assert raised == {}
    assert node.channel is not None
    assert node.channel.shells_started == 1
