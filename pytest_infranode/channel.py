"""The persistent exec channel: one long-lived shell in a node, many commands, framed replies.

A ``docker exec`` costs tens of milliseconds; a command sent to a shell that is already running
costs well under one. The channel starts ``/bin/sh`` once per node through one exec with stdin
attached (:meth:`ShellEngine.open_shell`) and sends it one line of shell per command::

    ( printf '@@<nonce>:S:<seq>:\\n'; printf '@@<nonce>:S:<seq>:\\n' >&2
      eval '<the command, single-quoted>'
    ) </dev/null; printf '@@<nonce>:E:<seq>:%d\\n' "$?"; printf '@@<nonce>:E:<seq>:\\n' >&2

(on one line). Why each piece:

- the subshell keeps ``cd``, ``export``, ``set``, traps, ``exit`` and ``exec`` from reaching the
  channel's shell, so nothing leaks from one command to the next;
- ``eval`` of a single-quoted string: a command with a syntax error fails in the subshell and
  cannot swallow the rest of the protocol;
- ``</dev/null``: a command reading stdin sees end of file, never the protocol stream;
- stdout and stderr are the exec's own, which Docker keeps apart (multiplexed frames), so no
  temporary files and no extra processes; the output is raw bytes (binary, any size);
- the start markers, printed before the command, let the reader drop what a background process
  of an earlier command wrote after that command ended; the end markers carry the exit status;
  ``<nonce>`` is random per channel, ``<seq>`` counts commands;
- the shell's pid, read once, lets a timeout kill the command (the shell's only descendants:
  background processes of earlier commands have been re-parented), after which the channel is
  usable again.

A command that cannot change the shell it runs in needs no subshell, and the fork is most of
a check's cost (a builtin such as ``test`` costs no process at all without it; an external
command costs one fork instead of two). :func:`runs_in_place` picks such commands: one simple
command of plain or single-quoted words (no ``$``, backquote, operator, redirection or
assignment) whose name is not a reserved word or a builtin that can change the shell. Those run
in the shell itself as ``eval '<command>' </dev/null`` between the same markers, followed by
``hash -r`` so that the paths it looked up are not remembered for later commands. Anything else
takes the subshell.

A command that kills the channel's shell (``kill $$``) gets the shell's exit status, as it would
from ``sh -c``; the next command starts a new shell. A node that dies mid-command is a
:class:`ChannelError`, never a hang. One command runs at a time; a lock serialises threads.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import struct
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import final

from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import ShellEngine
from pytest_infranode.engine.api import ShellStream
from pytest_infranode.errors import ChannelError
from pytest_infranode.errors import ChannelUnavailable
from pytest_infranode.errors import InfranodeError

_NODE_DIED_FIX = (
    "something stopped or removed the node (an OOM kill? a cleanup?); "
    "keep it for a look with --infra-keep=failure"
)
STDOUT = 1
STDERR = 2
RECV_SIZE = 256 * 1024

# Kills every descendant of a process (not the process), found through /proc: no procps needed.
# The tree is collected first: once a parent dies, its children are re-parented out of reach.
KILL_TREE = r"""all= cur=$1
while [ -n "$cur" ]; do
  nxt=
  for f in /proc/[0-9]*/stat; do
    read -r l <"$f" 2>/dev/null || continue
    set -- ${l##*) }
    for p in $cur; do
      if [ "$2" = "$p" ]; then f=${f#/proc/}; nxt="$nxt ${f%/stat}"; fi
    done
  done
  all="$all $nxt" cur=$nxt
done
kill -KILL $all 2>/dev/null
exit 0
"""


def sh_quote(data: bytes) -> bytes:
    """``data`` as one single-quoted shell word (any bytes but NUL)."""
    return b"'" + data.replace(b"'", b"'\\''") + b"'"


def new_nonce() -> str:
    return secrets.token_hex(16)


# One simple command: a name of plain characters (no glob, which could expand to a builtin's
# name), then words made of plain characters and single-quoted strings (no newline inside).
_IN_PLACE = re.compile(
    rb"[ \t]*(\[|[A-Za-z0-9_./-]+)(?:[ \t]+(?:[A-Za-z0-9_@%+=:,./*?\[\]-]|'[^'\n]*')+)*[ \t]*"
)
# Builtins that only read the shell's state and print: the names a command may have in place.
_IN_PLACE_BUILTINS = frozenset(b"true false test [ echo printf pwd".split())
# Reserved words and builtins of the usual /bin/sh shells (dash, bash, busybox ash, mksh, ksh):
# a command with any of these names (but the ones above) takes the subshell.
_SHELL_WORDS = frozenset(
    b"""! { } [[ ]] case do done elif else esac fi for function if in select then time until while
    coproc . : alias autoload bg bind break builtin caller cd chdir command compgen complete
    compopt continue declare dirs disown echo enable eval exec exit export false fc fg getopts
    hash help history integer jobs kill let local logout mapfile nameref popd print printf pushd
    pwd read readarray readonly return set shift shopt source suspend test times trap true type
    typeset ulimit umask unalias unset wait whence""".split()
)


def runs_in_place(command: bytes) -> bool:
    """Whether ``command`` can run in the channel's shell itself, without the isolating subshell.

    True only for one simple command that cannot leave anything behind in the shell: no
    expansion but globs in its arguments, no operator, redirection or assignment, and a name
    that is not a reserved word nor a builtin that can change the shell (see the module docstring).
    """
    match = _IN_PLACE.fullmatch(command)
    if match is None:
        return False
    name = match.group(1)
    return name in _IN_PLACE_BUILTINS or name not in _SHELL_WORDS


def encode_request(
    command: bytes, nonce: str, seq: int, *, in_place: bool = False, stdin: bytes | None = None
) -> bytes:
    """The line of shell that runs ``command`` in the channel's shell (see the module docstring).

    :param in_place: run ``command`` in the shell itself when :func:`runs_in_place` allows it
        (the shell must have ``hash -r``).
    :param stdin: what the command reads on its standard input (instead of end of file), sent
        as one single-quoted word that the ``printf`` builtin writes into a pipe: exact bytes,
        any size, but no NUL (binary data goes encoded, as ``put_file`` sends it).
    :raises ValueError: when ``command`` or ``stdin`` holds a NUL byte (no shell can run it).
    """
    if b"\0" in command:
        raise ValueError("a command cannot contain a NUL byte")
    if stdin is not None and b"\0" in stdin:
        raise ValueError("a command's standard input sent through the channel cannot contain a NUL byte")
    mark = f"@@{nonce}"
    begin = f"printf '{mark}:S:{seq}:\\n'; printf '{mark}:S:{seq}:\\n' >&2; "
    status = f"printf '{mark}:E:{seq}:%d\\n' \"$?\"; "
    end = f"printf '{mark}:E:{seq}:\\n' >&2\n"
    if stdin is not None:
        head = f"( {begin}printf %s ".encode() + sh_quote(stdin) + b" | eval "
        tail = f" ) </dev/null; {status}"
    elif in_place and runs_in_place(command):
        head, tail = f"{begin}eval ".encode(), f" </dev/null; {status}hash -r; "
    else:
        head, tail = f"( {begin}eval ".encode(), f" ) </dev/null; {status}"
    return b"".join((head, sh_quote(command), tail.encode(), end.encode()))


@final
class FrameDecoder:
    """Splits Docker's multiplexed attach stream into ``(stream, payload)`` pieces.

    Each frame is an 8-byte header (stream number: 0 stdin, 1 stdout, 2 stderr; three zero
    bytes; big-endian payload length) followed by the payload. Frames may arrive cut anywhere.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        while len(self._buf) - pos >= 8:
            stream, size = struct.unpack_from(">BxxxL", self._buf, pos)
            if len(self._buf) - pos - 8 < size:
                break
            out.append((stream, bytes(self._buf[pos + 8 : pos + 8 + size])))
            pos += 8 + size
        del self._buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)


@dataclass
class _Section:
    """One stream's part of a reply: skip to the start marker line, collect to the end marker."""

    start: bytes
    end: bytes
    started: bool = False
    done: bool = False
    start_value: bytes = b""
    end_value: bytes = b""
    buf: bytearray = field(default_factory=bytearray)
    searched: int = 0

    def feed(self, data: bytes) -> None:
        if self.done:
            return  # output of a background process after the command ended: dropped
        self.buf += data
        if not self.started:
            i = self.buf.find(self.start)
            if i < 0:
                # keep only what could be the beginning of a marker cut in two
                del self.buf[: max(0, len(self.buf) - len(self.start) + 1)]
                return
            nl = self.buf.find(b"\n", i + len(self.start))
            if nl < 0:
                del self.buf[:i]
                return
            self.start_value = bytes(self.buf[i + len(self.start) : nl])
            del self.buf[: nl + 1]
            self.started = True
            self.searched = 0
        j = self.buf.find(self.end, max(0, self.searched - len(self.end) + 1))
        if j < 0:
            self.searched = len(self.buf)
            return
        nl = self.buf.find(b"\n", j + len(self.end))
        if nl < 0:
            self.searched = j
            return
        self.end_value = bytes(self.buf[j + len(self.end) : nl])
        del self.buf[j:]
        self.done = True

    @property
    def output(self) -> bytes:
        return bytes(self.buf) if self.started else b""


@final
class ReplyParser:
    """Reads one command's reply out of the demultiplexed stdout and stderr of the shell."""

    def __init__(self, nonce: str, seq: int) -> None:
        mark = f"@@{nonce}"
        self._out = _Section(f"{mark}:S:{seq}:".encode(), f"{mark}:E:{seq}:".encode())
        self._err = _Section(f"{mark}:S:{seq}:".encode(), f"{mark}:E:{seq}:".encode())

    def feed(self, stream: int, data: bytes) -> None:
        if stream == STDOUT:
            self._out.feed(data)
        elif stream == STDERR:
            self._err.feed(data)

    @property
    def started(self) -> bool:
        """Whether the command has begun (its start marker came back)."""
        return self._out.started or self._err.started

    @property
    def done(self) -> bool:
        return self._out.done and self._err.done

    @property
    def stdout(self) -> bytes:
        return self._out.output

    @property
    def stderr(self) -> bytes:
        return self._err.output

    def result(self) -> ExecResult:
        """The command's outcome. :raises ValueError: before :attr:`done`, or on a bad trailer."""
        if not self.done:
            raise ValueError("the reply is not complete")
        status = self._out.end_value
        if not status.lstrip(b"-").isdigit():
            raise ValueError(f"bad exit status in the reply trailer: {status!r}")
        return ExecResult(int(status), self._out.output, self._err.output)


def _tail(data: bytes, limit: int = 2000) -> str:
    return data[-limit:].decode("utf-8", "replace")


@final
class Channel:
    """A long-lived shell in one node that runs commands one at a time.

    :param engine: the engine the node lives on.
    :param container_id: the node's container.
    :param where: how errors name the node (``Node.where``).
    :param shell: the shell to start; the channel needs a POSIX ``sh`` and ``/proc``.
    :param start_timeout: seconds to wait for the shell to answer its first command.
    :param user: the user the shell (and so every command) runs as; default, the image's user.
    """

    def __init__(
        self,
        engine: ShellEngine,
        container_id: str,
        *,
        where: str = "",
        shell: str = "/bin/sh",
        start_timeout: float = 30.0,
        user: str | None = None,
    ) -> None:
        self.engine = engine
        self.user = user
        self.container_id = container_id
        self.where = where or f"container {container_id[:12]}"
        self.shell = shell
        self.start_timeout = start_timeout
        self.nonce = new_nonce()
        self._lock = threading.Lock()
        self._stream: ShellStream | None = None
        self._decoder = FrameDecoder()
        self._seq = 0
        self.unavailable: ChannelUnavailable | None = None
        """Set once the shell could not start; the channel is not tried again."""
        self.shells_started = 0
        self.shell_pid: int | None = None
        """The pid of the running shell in the node (None when closed, or without a pid namespace view)."""
        self.in_place = False
        """Whether the running shell has ``hash -r``, which commands run in place need."""

    def __repr__(self) -> str:
        state = "open" if self._stream is not None else "closed"
        return f"<Channel {self.where} {state}>"

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def open(self) -> None:
        """Start the shell now (``run`` does it when needed).

        :raises ChannelUnavailable: when the shell does not start or does not answer.
        """
        with self._lock:
            self._ensure_open()

    def close(self) -> None:
        """End the shell (it sees end of file on stdin); safe to call twice.

        A command still running in another thread is cut off: its ``run`` raises.
        """
        if self._lock.acquire(timeout=1.0):
            try:
                self._drop()
            finally:
                self._lock.release()
        elif (stream := self._stream) is not None:
            stream.close()

    def run(
        self, command: str | bytes, *, timeout: float | None = None, stdin: bytes | None = None
    ) -> ExecResult:
        """Run a shell command line in the node, as ``/bin/sh -c`` would.

        :param stdin: the command's standard input (default: end of file); no NUL byte.
        :param timeout: seconds; past it the command and its children are killed and
            :class:`ChannelError` is raised (None: no limit).
        :raises ChannelUnavailable: when the shell cannot start.
        :raises ChannelError: when the node died, the daemon went away, or on a timeout.
        """
        data = command.encode("utf-8", "surrogateescape") if isinstance(command, str) else command
        with self._lock:
            for attempt in (1, 2):
                self._ensure_open()
                try:
                    return self._exchange(data, timeout, stdin=stdin)
                except _ShellGone as gone:
                    # The shell was gone before the command started (killed by an earlier
                    # command's background process, say): start a new one and send it again.
                    if attempt == 2:
                        raise ChannelError(
                            "the node's shell keeps ending before a command can start",
                            where=self.where,
                            fix="look at what the previous commands left running in the node",
                            detail=gone.detail,
                        ) from None
            raise AssertionError("unreachable")  # pragma: no cover

    # internals, called with the lock held
    def _ensure_open(self) -> None:
        if self._stream is not None:
            return
        if self.unavailable is not None:
            raise self.unavailable
        try:
            self._stream = self.engine.open_shell(self.container_id, [self.shell], user=self.user)
        except InfranodeError as err:
            state = self.engine.container_state(self.container_id)
            if state != "running":
                raise ChannelError(
                    f"the node is not running (container state: {state})",
                    where=self.where,
                    fix=_NODE_DIED_FIX,
                ) from err
            self.unavailable = ChannelUnavailable(
                f"cannot start {self.shell} in the node: {err.what}",
                where=self.where,
                fix=f"give the image a POSIX sh at {self.shell}; until then each command costs one exec",
            )
            raise self.unavailable from err
        self._decoder = FrameDecoder()
        self.shells_started += 1
        try:
            result = self._exchange(
                b'echo "$$"; if hash -r 2>/dev/null; then echo in-place; fi',
                self.start_timeout,
                starting=True,
            )
        except (ChannelError, _ShellGone) as err:
            detail = err.detail if isinstance(err, _ShellGone) else err.what
            self._drop()
            self.unavailable = ChannelUnavailable(
                f"{self.shell} in the node did not answer as a POSIX shell",
                where=self.where,
                fix=f"give the image a POSIX sh at {self.shell}; until then each command costs one exec",
                detail=detail,
            )
            raise self.unavailable from None
        pid, *rest = result.stdout.split() or [b""]
        if result.exit_status != 0 or not pid.isdigit():
            self._drop()
            self.unavailable = ChannelUnavailable(
                f"{self.shell} in the node failed its first command",
                where=self.where,
                fix=f"give the image a POSIX sh at {self.shell}; until then each command costs one exec",
                detail=_tail(result.stdout + result.stderr),
            )
            raise self.unavailable
        self.shell_pid = int(pid)
        self.in_place = rest == [b"in-place"]

    def _drop(self) -> None:
        stream, self._stream = self._stream, None
        self.shell_pid = None
        self.in_place = False
        if stream is not None:
            stream.close()

    def _send(self, stream: ShellStream, data: bytes) -> None:
        try:
            stream.send(data)
        except OSError as err:
            raise _ShellGone(f"writing to the shell failed: {err}") from None

    def _exchange(
        self, command: bytes, timeout: float | None, *, starting: bool = False, stdin: bytes | None = None
    ) -> ExecResult:
        stream = self._stream
        assert stream is not None
        self._seq += 1
        parser = ReplyParser(self.nonce, self._seq)
        try:
            self._send(
                stream, encode_request(command, self.nonce, self._seq, in_place=self.in_place, stdin=stdin)
            )
        except _ShellGone as gone:
            if starting:  # what the shell said before it ended explains why
                raise _ShellGone(self._drain(stream) or gone.detail) from None
            self._drop()
            self._check_node_alive(parser, b"")
            raise
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = bytearray()  # for a failing first command: what the shell said instead
        while not parser.done:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                if starting:
                    raise ChannelError("no answer", detail=_tail(bytes(seen)))
                return self._timed_out(parser, timeout or 0.0)
            try:
                data = stream.recv(RECV_SIZE, wait)
            except TimeoutError:
                continue
            except OSError as err:
                data = b""
                seen += f"[{err}]".encode()
            if not data:
                return self._ended(parser, bytes(seen), starting=starting)
            for number, payload in self._decoder.feed(data):
                if starting:
                    seen += payload
                parser.feed(number, payload)
        try:
            return parser.result()
        except ValueError as err:  # pragma: no cover - only a corrupted stream gets here
            self._drop()
            raise ChannelError(f"the node's shell sent a bad reply: {err}", where=self.where) from None

    def _drain(self, stream: ShellStream, limit: float = 2.0) -> str:
        """What is left in the stream of a shell that ended, as text."""
        said = bytearray()
        deadline = time.monotonic() + limit
        try:
            while (wait := deadline - time.monotonic()) > 0 and (data := stream.recv(RECV_SIZE, wait)):
                for _number, payload in self._decoder.feed(data):
                    said += payload
        except OSError:
            pass
        return _tail(bytes(said))

    def _ended(self, parser: ReplyParser, seen: bytes, *, starting: bool) -> ExecResult:
        """The stream ended mid-command: the shell died, or the node did."""
        stream = self._stream
        status = stream.exit_status() if stream is not None else None
        self._drop()
        if starting:
            raise _ShellGone(_tail(seen) or f"the shell ended (exit status {status})")
        self._check_node_alive(parser, b"")
        if not parser.started:
            raise _ShellGone(f"the shell had ended (exit status {status})")
        # The command killed the shell (`kill $$`): like `sh -c`, it gets the shell's status.
        return ExecResult(-1 if status is None else status, parser.stdout, parser.stderr)

    def _check_node_alive(self, parser: ReplyParser, extra: bytes) -> None:
        state = self.engine.container_state(self.container_id)
        if state == "running":
            # The daemon may not have noticed yet that the node is going down; one exec tells.
            try:
                probe = self.engine.exec(self.container_id, ["true"])
                alive = probe.exit_status == 0
            except InfranodeError:
                alive = False
            if alive:
                return
            state = self.engine.container_state(self.container_id)
        raise ChannelError(
            f"the node stopped while a command ran in it (container state: {state})",
            where=self.where,
            fix=_NODE_DIED_FIX,
            detail="--- output of the command so far (tail) ---\n"
            + _tail(parser.stdout + parser.stderr + extra),
        )

    def _timed_out(self, parser: ReplyParser, timeout: float) -> ExecResult:
        pid = self.shell_pid
        stream = self._stream
        if pid is not None and stream is not None:
            with contextlib.suppress(InfranodeError):
                self.engine.exec(self.container_id, ["/bin/sh", "-c", KILL_TREE, "sh", str(pid)])
            # The killed subshell's end marker comes back; read it so the shell stays usable.
            deadline = time.monotonic() + 5.0
            try:
                while not parser.done and (wait := deadline - time.monotonic()) > 0:
                    data = stream.recv(RECV_SIZE, wait)
                    if not data:
                        break
                    for number, payload in self._decoder.feed(data):
                        parser.feed(number, payload)
            except OSError:
                pass
        if not parser.done:
            self._drop()
        raise ChannelError(
            f"the command ran longer than its timeout of {timeout:g} s and was killed",
            where=self.where,
            fix="raise the timeout, or find why the command waits (does it expect input?)",
            detail="--- output so far (tail) ---\n" + _tail(parser.stdout + parser.stderr),
        )


class _ShellGone(Exception):
    """The shell ended before the command started: safe to start a new shell and resend."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
