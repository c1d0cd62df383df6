"""Permission denied on the daemon's socket, for real (topologies 3a and 3c): a throwaway user,
not in the socket's group, then listed in it by ``usermod -aG`` while its session predates that.

The package runs as that user on the system python, with the packages it imports copied where
the user may read them (this interpreter may live under /root). The user is removed afterwards.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import ThrowawayUser
from tests.integration.lab import python_for_other_users
from tests.integration.lab import throwaway_user

pytestmark = pytest.mark.slow

SOCKET = "/var/run/docker.sock"

CONNECT = """
import json, sys
from pytest_infranode.engine import daemon
from pytest_infranode.engine import doctor
from pytest_infranode.errors import DaemonError
try:
    client, info = daemon.connect(None, wait=0)
except DaemonError as err:
    print(json.dumps({"ok": False, "kind": type(err).__name__, "what": err.what, "fix": err.fix,
                      "detail": err.detail, "doctor": doctor.render_text(doctor.run_doctor(None, wait=0))}))
else:
    client.close()
    print(json.dumps({"ok": True, "version": info.server_version}))
"""


@pytest.fixture(scope="module")
def socket_group() -> str:
    st = os.stat(SOCKET)
    assert stat.S_ISSOCK(st.st_mode), f"{SOCKET} is not a socket"
    assert st.st_mode & 0o007 == 0, f"{SOCKET} is open to everyone ({oct(st.st_mode)}): nothing to deny"
    return grp.getgrgid(st.st_gid).gr_name


@pytest.fixture(scope="module")
def runtime() -> Iterator[tuple[str, dict[str, str]]]:
    base = Path(tempfile.mkdtemp(prefix="inft-perm-"))
    base.chmod(0o755)
    try:
        python, lib = python_for_other_users(base, "pytest_infranode.engine.daemon")
        home = base / "home"
        home.mkdir(mode=0o777)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "PYTHONPATH": str(lib)}
        yield python, env
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def user() -> Iterator[ThrowawayUser]:
    account = throwaway_user()
    yield account
    account.remove()


def _connect_as(
    user: ThrowawayUser, runtime: tuple[str, dict[str, str]], *, login_groups: bool
) -> dict[str, str]:
    python, env = runtime
    done = user.run([python, "-s", "-c", CONNECT], env, login_groups=login_groups)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_user_not_in_the_socket_group(
    user: ThrowawayUser, runtime: tuple[str, dict[str, str]], socket_group: str
) -> None:
    """3a: the error names the user, the group, the socket's owner and mode, and the fix."""
    result = _connect_as(user, runtime, login_groups=True)
    assert result["kind"] == "DaemonPermissionDenied", result
    assert (
        result["what"]
        == f"permission denied on {SOCKET}: user {user.name!r} is not in group {socket_group!r}"
    )
    assert f"sudo usermod -aG {socket_group} {user.name}" in result["fix"]
    assert f"{SOCKET}: srw-rw---- root:{socket_group}" in result["detail"]
    assert f"FAIL  connect     permission denied on {SOCKET}" in result["doctor"]


def test_added_to_the_group_but_the_session_predates_it(
    user: ThrowawayUser, runtime: tuple[str, dict[str, str]], socket_group: str
) -> None:
    """3c: /etc/group lists the user, the running process does not carry the group; a new login
    (the same user with its groups initialised again) then works."""
    user.add_to_group(socket_group)
    stale = _connect_as(user, runtime, login_groups=False)
    assert stale["what"] == (
        f"permission denied on {SOCKET}: you were added to {socket_group!r} but this session predates it"
    )
    assert f"newgrp {socket_group}" in stale["fix"]
    fresh = _connect_as(user, runtime, login_groups=True)
    assert fresh["ok"], fresh


def test_the_throwaway_user_is_gone_afterwards() -> None:
    """No account this module made is left in /etc/passwd (the fixtures remove them)."""
    name = f"inft{os.getpid() % 100000}"
    assert subprocess.run(["id", name], capture_output=True, check=False).returncode != 0
