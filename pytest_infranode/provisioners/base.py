"""The Provisioner contract (Protocol, optional members, secrets, inputs, the steps its output
announces) and the result of a converge."""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import final
from typing import runtime_checkable

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.platforms import Platform
    from pytest_infranode.settings import ProvisionerConfig

OutputSink = Callable[[bytes], None]
StepReader = Callable[[str], str | None]
"""Reads one line of converge output (colours removed): the step it announces, or None."""


OUTPUT_TAIL_BYTES = 64 * 1024
"""How much of a converge's output stays in memory (its end): :attr:`ConvergeResult.output`.
The whole output is streamed to the node's converge log as it comes."""
LINE_MAX = 64 * 1024
"""The longest line handed to a line reader (:class:`OutputTail`'s ``on_line``); longer ones are
cut there, so that output without newlines cannot grow a line without bound."""
MAX_CHANGES = 200
"""How many changes a :class:`ChangeList` keeps (the first ones); the others are counted."""
MAX_CHANGE_CHARS = 16 * 1024
"""How long one kept change may be (a task and its diff); a longer one is cut and says so."""


@final
@dataclass(frozen=True, slots=True)
class ConvergeResult:
    """What a converge did.

    :param exit_status: the provisioner's exit status (0 is success).
    :param output: the end of its combined output, as text: at most :data:`OUTPUT_TAIL_BYTES`
        (a longer text is cut to its end here); the whole output is in the node's converge log.
    :param changed: whether it changed the node, when the provisioner can tell (None: it cannot).
    :param changes: what it changed, in the provisioner's own words (a task and its diff, a
        resource), one entry per change; shown when an idempotence check fails. A
        :class:`ChangeList` keeps them bounded.
    :param reason: why it failed, when the provisioner can tell (see the attribute).
    :param dropped: how much output came before ``output`` and is not kept (bytes; 0: ``output``
        is all of it).
    :param more_changes: how many changes were found beyond those in ``changes``.
    """

    exit_status: int
    output: str = ""
    changed: bool | None = None
    changes: tuple[str, ...] = ()
    reason: str = ""
    """Why it failed, in one sentence, when the provisioner knows better than its exit status
    (``user 'app' does not exist in the node``; the tool's own words, such as Salt's
    ``No Top file or master_tops data matches found``); shown in the converge error's first line."""
    ran: bool = True
    """False when nothing ran in the node (no provisioner configured): the node stays bare, and
    the summary's converge column says ``none``."""
    dropped: int = 0
    more_changes: int = 0

    def __post_init__(self) -> None:
        if len(self.output) > OUTPUT_TAIL_BYTES:
            cut = self.output[:-OUTPUT_TAIL_BYTES]
            object.__setattr__(self, "dropped", self.dropped + len(cut.encode("utf-8", "replace")))
            object.__setattr__(self, "output", self.output[-OUTPUT_TAIL_BYTES:])

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-lines:])


def _text_of_end(data: bytes, *, cut: bool) -> str:
    """``data`` as text; when it is the end of a longer output (``cut``), from its first whole
    line on (when it has more than one)."""
    if cut:
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:
            data = data[nl + 1 :]
    return data.decode("utf-8", "replace")


@final
class OutputTail:
    """An output sink that passes a converge's output on and keeps only its end in memory: the
    one collector of every built-in provisioner (a converge may print gigabytes; the log file
    gets all of it, memory the last ``max_bytes``).

    :param sink: where each chunk goes on to (the ``output`` a provisioner was given), or None.
    :param max_bytes: how much of the end is kept (:attr:`text`); what came before is counted
        (:attr:`dropped`), not kept.
    :param on_line: called with each whole line as it comes (decoded, without its newline, cut
        at :data:`LINE_MAX`), for a provisioner that reads what its tool changed from the output
        while it streams (Puppet's notices, Chef's resources, pyinfra's results table) rather
        than from all of it afterwards. The last line without a newline is read by
        :meth:`result` (or :meth:`flush`).

    A provisioner that reads its tool's answer from the end of the output (Salt's JSON) asks for
    a ``max_bytes`` that holds it and checks :attr:`dropped` when it cannot read it.
    """

    def __init__(
        self,
        sink: OutputSink | None = None,
        *,
        max_bytes: int = OUTPUT_TAIL_BYTES,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self._sink = sink
        self._max = max_bytes
        self._buf = bytearray()
        self._on_line = on_line
        self._line = bytearray()
        self.total = 0
        """Bytes of output seen."""
        self.dropped = 0
        """Bytes of output before :attr:`text`, not kept."""

    def __call__(self, chunk: bytes) -> None:
        if self._sink is not None:
            self._sink(chunk)
        self.total += len(chunk)
        if len(chunk) >= self._max:
            self.dropped += len(self._buf) + len(chunk) - self._max
            self._buf = bytearray(chunk[len(chunk) - self._max :])
        else:
            self._buf += chunk
            excess = len(self._buf) - self._max
            if excess > 0:
                del self._buf[:excess]
                self.dropped += excess
        if self._on_line is not None:
            self._read_lines(chunk)

    def _read_lines(self, chunk: bytes) -> None:
        assert self._on_line is not None
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            self._take(chunk, start, nl)
            self._on_line(self._line.decode("utf-8", "replace").rstrip("\r"))
            self._line.clear()
            start = nl + 1
        self._take(chunk, start, len(chunk))

    def _take(self, chunk: bytes, start: int, end: int) -> None:
        room = LINE_MAX - len(self._line)
        if room > 0:
            self._line += chunk[start : min(end, start + room)]

    def flush(self) -> None:
        """Hand the last line, if it has no newline, to ``on_line``."""
        if self._on_line is not None and self._line:
            self._on_line(self._line.decode("utf-8", "replace").rstrip("\r"))
            self._line.clear()

    @property
    def text(self) -> str:
        """The kept end of the output (from a whole line on, when the start was dropped)."""
        return _text_of_end(bytes(self._buf), cut=self.dropped > 0)

    def result(
        self,
        exit_status: int,
        *,
        changed: bool | None = None,
        changes: ChangeList | Sequence[str] = (),
        reason: str = "",
    ) -> ConvergeResult:
        """The :class:`ConvergeResult` of this output: its kept end and what was dropped."""
        self.flush()
        more = changes.more if isinstance(changes, ChangeList) else 0
        return ConvergeResult(
            exit_status,
            self.text,
            changed=changed,
            changes=tuple(changes),
            reason=reason,
            dropped=self.dropped,
            more_changes=more,
        )


@final
class ChangeList:
    """The changes a provisioner found, bounded: the first :data:`MAX_CHANGES` kept (each cut at
    :data:`MAX_CHANGE_CHARS`), the others counted in ``more``. ``len`` counts them all."""

    def __init__(self, max_changes: int = MAX_CHANGES, max_chars: int = MAX_CHANGE_CHARS) -> None:
        self._kept: list[str] = []
        self._max = max_changes
        self._chars = max_chars
        self.more = 0

    def add(self, change: str) -> None:
        if len(self._kept) >= self._max:
            self.more += 1
            return
        if len(change) > self._chars:
            change = change[: self._chars] + f"\n… ({len(change) - self._chars} more characters: see the log)"
        self._kept.append(change)

    def extend(self, changes: Iterable[str]) -> None:
        for change in changes:
            self.add(change)

    def __iter__(self) -> Iterator[str]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept) + self.more

    def __bool__(self) -> bool:
        return len(self) > 0


def file_tail(path: Path, lines: int, max_bytes: int = OUTPUT_TAIL_BYTES) -> str:
    """The last ``lines`` lines of the file ``path``, read from its last ``max_bytes`` only (a
    converge log may be gigabytes); "" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read(max_bytes)
    except OSError:
        return ""
    text = _text_of_end(data, cut=size > max_bytes)
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


MASK = b"********"


def has_secrets(config: ProvisionerConfig) -> bool:
    """Whether the converge is given secrets (``secret_env``): then it is never cached."""
    return bool(config.options.get("secret_env"))


def secret_names(config: ProvisionerConfig) -> list[str]:
    """The environment variables named in ``secret_env``: the one reading of that option
    (a provisioner that accepts it checks its form in ``check``)."""
    names = config.options.get("secret_env")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def secrets_of(config: ProvisionerConfig, environ: Mapping[str, str]) -> list[str]:
    """The secret values to mask in every log and message of this converge."""
    return [environ[n] for n in secret_names(config) if environ.get(n)]


def mask(text: str, secrets: list[str]) -> str:
    """Replace every secret in ``text`` (longest first, so overlapping ones go too). Pure."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK.decode())
    return text


@final
class MaskingSink:
    """An output sink that masks secrets before passing output on.

    Output is held back up to the last newline so that a secret split across two chunks is still
    found; :meth:`flush` passes on what remains. Output without newlines is held back no further
    than :data:`LINE_MAX`: then all of it is passed on but what could be the start of a secret.
    """

    def __init__(self, sink: OutputSink, secrets: list[str]) -> None:
        self._sink = sink
        self._secrets = sorted((s.encode() for s in secrets if s), key=len, reverse=True)
        self._pending = b""

    def _masked(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, MASK)
        return data

    def _safe_cut(self, data: bytes) -> int:
        """Where ``data`` (no newline in it) can be cut with no secret across the cut and no
        secret's start after it: at most the longest secret's length before its end."""
        cut = len(data) - len(self._secrets[0]) + 1
        moved = True
        while moved:
            moved = False
            for secret in self._secrets:
                start = data.find(secret, max(0, cut - len(secret) + 1))
                if 0 <= start < cut < start + len(secret):
                    cut, moved = start, True
        return max(cut, 0)

    def __call__(self, chunk: bytes) -> None:
        if not self._secrets:
            self._sink(chunk)
            return
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        if not cut and len(data) > LINE_MAX:
            cut = self._safe_cut(data)
        self._pending = data[cut:]
        if cut:
            self._sink(self._masked(data[:cut]))

    def flush(self) -> None:
        if self._pending:
            self._sink(self._masked(self._pending))
            self._pending = b""


@runtime_checkable
class Provisioner(Protocol):
    """Turns a bare node into the machine under test: the contract between a provisioner and the
    rest of the plugin, which never names a provisioner.

    ``check`` runs at configure time, before any node exists: it validates the options and the
    files they name and raises :class:`~pytest_infranode.errors.SettingsError`. ``converge``
    runs once per node and streams the tool's output to ``output`` (the node's log), keeping
    only its end in memory: an :class:`OutputTail` around ``output`` does both, and makes the
    result (a converge may print gigabytes).

    What the rest needs to know, and where it is said:

    - *changed*: :attr:`ConvergeResult.changed` (None: the tool cannot tell) and
      :attr:`ConvergeResult.changes`, in the tool's own words; ``--infra-idempotence`` fails a
      node whose second converge changed something. Read them as the output streams
      (``OutputTail(on_line=...)``) or from the bounded end it keeps, and keep them in a
      :class:`ChangeList`.
    - *why it failed*: :attr:`ConvergeResult.reason`, in the tool's own words, for the error's
      first line.
    - *the idempotence run*: ``node.converge_round`` is 1 for the first converge and 2 for the
      idempotence check's (a tool may then ask for a diff).
    - *secrets*: the ``secret_env`` option, read by :func:`secret_names` only; its values are
      masked in logs, and such a converge is never cached.
    - *converge-cache inputs* (optional members, see :class:`DeclaresInputs` and
      :class:`DeclaresTools`): the files it reads, else every option naming an existing file
      (:func:`option_paths`); a ``version``, else its distribution's; the distributions of the
      tool it runs.
    - *the steps of its output* (optional member, see :class:`AnnouncesSteps`): which lines name
      the step the tool is at (a task, an operation, a resource), for the live progress lines;
      else the ``$ command`` headers (:func:`command_step`).
    - *a bare node* (optional member, see :class:`LeavesBare`): a provisioner that runs nothing;
      its result says so (:attr:`ConvergeResult.ran`), and the node is not called converged.
    - *one run over several nodes* (optional members, see :class:`ConvergesTogether`): the named
      nodes of one platform that share its settings are converged by one run of the tool over
      an inventory holding all of them (cross-host references work), else node by node.
    - *Molecule's other actions* (optional members, see :class:`RunsActions`): a side effect run
      after the converge and the idempotence check, before the tests; checks written for the
      tool, collected as a test per platform.
    """

    name: str

    def check(self, config: ProvisionerConfig) -> None: ...

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult: ...


@runtime_checkable
class DeclaresInputs(Protocol):
    """A provisioner that says which files its converge reads (relative to the config file)."""

    def inputs(self, config: ProvisionerConfig) -> Iterable[str | Path]: ...


@runtime_checkable
class DeclaresTools(Protocol):
    """A provisioner whose tool's version changes the converge: distributions by name."""

    tools: tuple[str, ...]


@runtime_checkable
class LeavesBare(Protocol):
    """A provisioner that runs nothing (``none``): its converge is announced as a bare node, and
    its :attr:`ConvergeResult.ran` is False."""

    leaves_bare: bool


@runtime_checkable
class AnnouncesSteps(Protocol):
    """A provisioner whose tool names, in lines of its output, the step it is at."""

    def step_of(self, line: str) -> str | None:
        """The step ``line`` announces (``TASK [web : Install nginx]``), or None. Pure."""
        ...


@final
@dataclass(frozen=True, slots=True)
class InventoryHost:
    """One node as a host of a whole-group inventory (see :class:`ConvergesTogether`).

    :param name: its inventory name: the node's name in ``nodes:``, which is its hostname too.
    :param container: the container the tool reaches (its id, or its name before it exists).
    :param platform: the node's platform (groups may name platforms and families).
    :param groups: the node's own ``groups:``; they are inventory groups too.
    """

    name: str
    container: str
    platform: Platform
    groups: tuple[str, ...] = ()


@runtime_checkable
class ConvergesTogether(Protocol):
    """A provisioner that converges several booted nodes of one platform in one run over an
    inventory holding all of them (Ansible's model: ``delegate_to``, ``hostvars`` of other
    hosts and group loops need it).

    The session calls :meth:`converge_together` once the nodes have booted, instead of
    ``converge`` per node; ``limit`` narrows a run to some hosts of the inventory (the session
    converges ``depends_on`` levels one after the other). The inventory is a file the session
    names, in a folder of its own in its log directory, and stays for the session (the specs
    may read it).
    """

    def write_inventory(self, path: Path, hosts: Sequence[InventoryHost], config: ProvisionerConfig) -> None:
        """Write the inventory of ``hosts`` to ``path``, before or after their containers exist,
        and what the tool reads next to it (Ansible's linked ``group_vars``/``host_vars``
        folders): ``path``'s folder is the inventory's own."""
        ...

    def inventory_env(self, config: ProvisionerConfig) -> Mapping[str, str]:
        """What the tool's other commands need in their environment to use the inventory (its
        connection plugin): the session sets it, so that the specs' own runs of the tool reach
        the nodes (testinfra's module runner, for one)."""
        ...

    def converge_together(
        self,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory: Path,
        limit: Sequence[str] = (),
    ) -> ConvergeResult:
        """Converge ``nodes`` (in ``limit`` only, when given: inventory names) in one run,
        writing the inventory to ``inventory`` first. ``changes`` name the host of each."""
        ...


ACTIONS = ("side_effect", "verify")
"""Molecule's actions besides the converge that a provisioner may run itself (:class:`RunsActions`)."""


@runtime_checkable
class RunsActions(Protocol):
    """A provisioner that runs Molecule's other actions itself, given the configuration names
    them (the ansible provisioner's ``side_effect:`` and ``verify:`` playbooks):

    - ``side_effect``: something done to the converged nodes (a service stopped, a file
      removed) that the specs then check the machine for. The session runs it after the
      converge and its idempotence check, before the tests, over the nodes converged together
      (or one node), its output appended to their converge log; a failure fails the nodes like
      a failed converge. It is not part of a cached converge: a converge cache hit runs it again.
    - ``verify``: checks written for the tool (Molecule's Ansible verifier), collected as one
      pytest test per platform; it runs over every node of the platform and fails the test,
      never the nodes.
    """

    def action_of(self, action: str, config: ProvisionerConfig) -> str | None:
        """What ``config``'s ``action`` (one of :data:`ACTIONS`) runs, in a few words
        (``side_effect.yml``), or None when it names none. Pure apart from reading the options."""
        ...

    def run_action(
        self,
        action: str,
        nodes: Sequence[Node],
        config: ProvisionerConfig,
        output: OutputSink,
        *,
        inventory: Path | None,
    ) -> ConvergeResult:
        """Run ``action`` over ``nodes`` (writing an inventory of all of them to ``inventory``
        first when given, else to a temporary file of its own)."""
        ...


def action_of(provisioner: Provisioner, action: str, config: ProvisionerConfig) -> str | None:
    """What ``provisioner`` runs for ``action`` under ``config`` (None: nothing)."""
    return provisioner.action_of(action, config) if isinstance(provisioner, RunsActions) else None


def converges_together(provisioner: Provisioner) -> bool:
    """Whether ``provisioner`` offers the whole-group converge of :class:`ConvergesTogether`."""
    return isinstance(provisioner, ConvergesTogether)


def command_step(line: str) -> str | None:
    """A ``$ command`` header, which a provisioner prints before each command it runs (the
    built-in ones all do): the step is the command. Pure."""
    return line if line.startswith("$ ") and line[2:] else None


def step_reader(provisioner: Provisioner) -> StepReader:
    """How the live progress reads the steps in ``provisioner``'s output: its own
    :meth:`AnnouncesSteps.step_of`, else :func:`command_step`."""
    return provisioner.step_of if isinstance(provisioner, AnnouncesSteps) else command_step


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def resolve(value: str | Path, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else base_dir / path


def option_paths(config: ProvisionerConfig) -> list[Path]:
    """Every option value that names an existing file or directory on the runner: the inputs
    of a provisioner that does not declare its own."""
    found: list[Path] = []
    base = config.base_dir.resolve()
    for text in _strings(dict(config.options)):
        if not text or "\n" in text or len(text) > 1024:
            continue
        try:
            path = resolve(text, config.base_dir).resolve()
            exists = path.exists()
        except (OSError, ValueError):
            continue
        if not exists or path == base or path in base.parents:
            continue
        if os.path.isabs(text) and path.is_dir() and base not in path.parents:
            continue  # ``dest: /etc`` names a directory in the node, not an input here
        found.append(path)
    return found


def input_paths(provisioner: Provisioner, config: ProvisionerConfig) -> list[Path]:
    """Files and directories the converge reads, each once, in a stable order."""
    if isinstance(provisioner, DeclaresInputs):
        found = [resolve(p, config.base_dir) for p in provisioner.inputs(config)]
    else:
        found = option_paths(config)
    return sorted({p.resolve() for p in found})


def tool_distributions(provisioner: Provisioner) -> tuple[str, ...]:
    return tuple(provisioner.tools) if isinstance(provisioner, DeclaresTools) else ()
