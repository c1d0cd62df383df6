"""Integration tests run against a real Docker daemon. A missing daemon fails them; never skips."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_infranode import labels
from pytest_infranode.cli import main
from pytest_infranode.engine import Engine
from pytest_infranode.errors import DaemonError

EXAMPLES = Path(__file__).parents[2] / "examples"
EXAMPLE_PLATFORMS = ("debian-12", "debian-13")
"""Every platform the project can start here (ENVIRONMENT.md): each example runs on all of them."""
OWNER = f"{os.uname().nodename}:{os.getpid()}"


_RESET_SIGNALS_AND_EXEC = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def as_from_a_terminal(argv: list[str]) -> list[str]:
    """``argv`` started with SIGINT and SIGTERM at their defaults, as a terminal user has them.

    A process started in the background by a non-interactive shell (a CI step or a rehearsal
    ending in `&`) inherits SIGINT ignored, and so would every session it starts: Python then
    installs no KeyboardInterrupt handler, the plugin rightly leaves an ignored SIGINT alone, and
    a test that sends SIGINT sees nothing happen. The exec keeps the reset dispositions.
    """
    return [sys.executable, "-c", _RESET_SIGNALS_AND_EXEC, *argv]


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        eng = Engine.connect()
    except DaemonError as err:
        pytest.fail(f"integration tests need a Docker daemon; run scripts/dev test.\n{err}", pytrace=False)
    yield eng
    eng.close()


@pytest.fixture(autouse=True, scope="module")
def _no_leftovers(engine: Engine) -> Iterator[None]:
    """Fail the module if any container made by this process (in-process pytester runs) remains."""
    yield
    left = engine.list_containers([f"{labels.PID}={OWNER}"])
    for c in left:
        engine.remove_container(c.id)
    assert not left, f"containers left behind: {[c.name for c in left]}"


@dataclass
class InfraRun:
    result: pytest.RunResult
    session_id: str


SESSION_RE = re.compile(r"session ([0-9a-f]{16})")


@pytest.fixture
def infra_run(pytester: pytest.Pytester, engine: Engine) -> Callable[..., InfraRun]:
    """Run an inner pytest session; afterwards, check that it left no container behind."""

    def run(*args: str, subprocess: bool = False, allow_kept: bool = False) -> InfraRun:
        result = pytester.runpytest_subprocess(*args) if subprocess else pytester.runpytest(*args)
        match = SESSION_RE.search(result.stdout.str())
        session_id = match.group(1) if match else ""
        if session_id and not allow_kept:
            left = engine.list_containers([f"{labels.SESSION}={session_id}"])
            assert not left, f"session {session_id} left containers: {[c.name for c in left]}"
        return InfraRun(result, session_id)

    return run


def copy_example(pytester: pytest.Pytester, name: str) -> None:
    src = EXAMPLES / name
    for path in src.iterdir():
        if path.name in (".pytest_cache", "__pycache__"):
            continue
        target = pytester.path / path.name
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)


def import_molecule(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], role: Path, *flags: str
) -> tuple[list[str], list[str]]:
    """`infranode import molecule --role ROLE` run from the test's folder, as a user runs it
    there: the lines it printed, and the pytest command it suggests (split into words)."""
    here = Path.cwd()
    os.chdir(pytester.path)
    try:
        assert main(["import", "molecule", "--role", str(role), *flags]) == 0
    finally:
        os.chdir(here)
    printed = capsys.readouterr().out.splitlines()
    return printed, shlex.split(printed[printed.index("run the specs with:") + 1])


TRANSFER_FILES = ("empty", "binary.bin", "big.bin")
"""The files a provisioner's fast path must carry whole (`transfer_files`): nothing, every byte
value, and 12 MB, more than any one message of a channel."""


def transfer_files(folder: Path) -> None:
    """Write :data:`TRANSFER_FILES` into ``folder``, with the empty ``fetched/`` they come back to."""
    (folder / "empty").write_bytes(b"")
    (folder / "binary.bin").write_bytes(bytes(range(256)) * 16 + os.urandom(4096))
    (folder / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    (folder / "fetched").mkdir()


def fetched_whole(folder: Path, name: str = "big.bin") -> bool:
    """Whether ``fetched/NAME`` came back from the node byte for byte."""
    return (
        hashlib.sha256((folder / "fetched" / name).read_bytes()).digest()
        == hashlib.sha256((folder / name).read_bytes()).digest()
    )
