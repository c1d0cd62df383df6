"""DOCKER_HOST=ssh://root@127.0.0.1:PORT for real (topology 6): a private sshd on loopback with
its own host key and authorized_keys, and an isolated client HOME (paramiko, docker-py's default
ssh transport, reads ``$HOME/.ssh/config`` and ``$HOME/.ssh/known_hosts``). The daemon behind it
is this machine's own, reached through ``docker system dial-stdio`` on the ssh side.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_infranode.engine import daemon
from pytest_infranode.engine import doctor
from pytest_infranode.errors import DaemonError
from tests.integration.conftest import InfraRun
from tests.integration.lab import LabSshd
from tests.integration.lab import start_sshd
from tests.integration.lab import throwaway_user

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd() -> Iterator[LabSshd]:
    base = Path(tempfile.mkdtemp(prefix="inft-ssh-"))
    base.chmod(0o755)  # the throwaway user's login reads authorized_keys below it (keys stay 0600)
    try:
        lab = start_sshd(base, _free_port())
        yield lab
        lab.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER_CONFIG": str(home / "dockercfg")}


def _connect_error(url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> DaemonError:
    monkeypatch.setenv("HOME", str(home))  # paramiko reads os.environ
    try:
        client, _ = daemon.connect(url, environ=_env(home), wait=3)
    except DaemonError as err:
        return err
    client.close()
    pytest.fail(f"connected to {url}, expected a diagnosis")


def test_session_over_ssh(
    pytester: pytest.Pytester,
    infra_run: Callable[..., InfraRun],
    sshd: LabSshd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole session through ssh://: build-or-reuse, systemd boot, converge (copy in), exec,
    the exec channel, file read back, removal."""
    monkeypatch.setenv("HOME", str(sshd.home))
    monkeypatch.setenv("DOCKER_HOST", sshd.url)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - echo over-ssh > /etc/infranode-marker
        """,
    )
    pytester.makepyfile(
        """
        def test_marker(host):
            assert host.file("/etc/infranode-marker").content_string == "over-ssh\\n"
            assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"

        def test_copy_in_and_out(infra_node):
            infra_node.put_files("/opt/drop", {"hello.txt": (b"through ssh\\n", 0o600)})
            assert infra_node.get_file("/opt/drop/hello.txt") == b"through ssh\\n"
        """
    )
    run = infra_run("-v", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=2)
    run.result.stdout.fnmatch_lines([f"infranode: daemon Docker * via {sshd.url} [[]DOCKER_HOST[]]*"])


def test_doctor_over_ssh(sshd: LabSshd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(sshd.home))
    report = doctor.run_doctor(sshd.url, _env(sshd.home), wait=5)
    assert report.ok, doctor.render_text(report)
    assert report.source == "--infra-docker-host"


def test_unknown_host_key(sshd: LabSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A HOME with the right key but an empty known_hosts: paramiko refuses, the doctor says which
    file lacks which host, and how to add it; the ssh client's own words are the evidence."""
    dot = tmp_path / ".ssh"
    dot.mkdir(mode=0o700)
    shutil.copy(sshd.home / ".ssh" / "id_ed25519", dot / "id_ed25519")
    err = _connect_error(sshd.url, tmp_path, monkeypatch)
    assert err.what == f"the host key of [127.0.0.1]:{sshd.port} is not in {dot}/known_hosts"
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {dot}/known_hosts" in err.fix
    assert "not found in known_hosts" in err.detail
    assert "Host key verification failed." in err.detail


def test_key_refused(sshd: LabSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dot = tmp_path / ".ssh"
    dot.mkdir(mode=0o700)
    shutil.copy(sshd.home / ".ssh" / "known_hosts", dot / "known_hosts")
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(dot / "id_ed25519")]
    subprocess.run(keygen, check=True, capture_output=True)  # a key sshd does not know
    err = _connect_error(sshd.url, tmp_path, monkeypatch)
    assert err.what == f"the ssh server refused the key for root@127.0.0.1:{sshd.port}"
    assert "Permission denied (publickey)" in err.detail


def test_no_sshd_on_that_port(sshd: LabSshd, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    err = _connect_error(f"ssh://root@127.0.0.1:{port}", sshd.home, monkeypatch)
    assert err.what == f"nothing listens for ssh on 127.0.0.1:{port} (no sshd, or the wrong port)"
    assert "Connection refused" in err.detail


def test_context_over_ssh(sshd: LabSshd, monkeypatch: pytest.MonkeyPatch) -> None:
    """A docker context whose endpoint is ssh:// (``docker context create --docker host=ssh://…``),
    chosen by DOCKER_CONTEXT: connected through it, and the source names the context."""
    monkeypatch.setenv("HOME", str(sshd.home))
    env = {**_env(sshd.home), "DOCKER_CONTEXT": "lab-ssh"}
    meta = Path(env["DOCKER_CONFIG"]) / "contexts" / "meta" / daemon.context_id("lab-ssh")
    meta.mkdir(parents=True)
    endpoint = {"docker": {"Host": sshd.url, "SkipTLSVerify": False}}
    (meta / "meta.json").write_text(json.dumps({"Name": "lab-ssh", "Metadata": {}, "Endpoints": endpoint}))
    try:
        client, info = daemon.connect(None, environ=env, wait=5)
        client.close()
        assert (info.endpoint, info.source) == (sshd.url, "context 'lab-ssh' (DOCKER_CONTEXT)")
        report = doctor.run_doctor(None, env, wait=5)
        assert report.ok, doctor.render_text(report)
    finally:
        shutil.rmtree(Path(env["DOCKER_CONFIG"]), ignore_errors=True)


def test_changed_host_key(sshd: LabSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """known_hosts holds another key for the host (it was rebuilt, or someone is in the middle):
    the doctor names the stale line and says to remove it before storing the new key, since
    appending would leave the stale line first."""
    dot = tmp_path / ".ssh"
    dot.mkdir(mode=0o700)
    shutil.copy(sshd.home / ".ssh" / "id_ed25519", dot / "id_ed25519")
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")]
    subprocess.run(keygen, check=True, capture_output=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    (dot / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    err = _connect_error(sshd.url, tmp_path, monkeypatch)
    assert err.what == (
        f"the host key of 127.0.0.1:{sshd.port} changed since it was stored in {dot}/known_hosts:1"
    )
    assert f"ssh-keygen -f {dot}/known_hosts -R '[127.0.0.1]:{sshd.port}' && ssh-keyscan" in err.fix
    assert "BadHostKeyException" in err.detail
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in err.detail


PARAMIKO_MISSING = """
import json, sys
sys.modules["paramiko"] = None  # what an environment without paramiko gives: ImportError
from pytest_infranode.engine import daemon
from pytest_infranode.errors import DaemonError
try:
    daemon.connect(sys.argv[1], wait=3)
except DaemonError as err:
    print(json.dumps({"what": err.what, "fix": err.fix, "detail": err.detail}))
"""


def test_paramiko_missing(sshd: LabSshd) -> None:
    """docker-py's ssh transport without paramiko (an interpreter where importing it fails): the
    diagnosis says so and how to install it, although plain ssh to the host works."""
    env = {**_env(sshd.home), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", PARAMIKO_MISSING, sshd.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    found = json.loads(done.stdout)
    assert found["what"] == "ssh:// needs paramiko (docker-py's ssh transport), which is not installed"
    assert found["fix"] == "pip install 'pytest-infranode[ssh]' (or: pip install paramiko)"
    assert "Install paramiko package to enable ssh:// support" in found["detail"]
    assert "ssh exit status 0" in found["detail"]  # the ssh client itself gets through


def test_remote_user_not_in_the_docker_group(sshd: LabSshd, monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh works, but the remote account may not open the daemon's socket: the remote docker CLI's
    own words are the evidence and the fix is the usermod on that host."""
    user = throwaway_user("inftssh", shell="/bin/sh")
    try:
        err = _connect_error(f"ssh://{user.name}@127.0.0.1:{sshd.port}", sshd.home, monkeypatch)
    finally:
        user.remove()
    assert err.what == f"{user.name} on 127.0.0.1 may not use the Docker socket"
    assert err.fix == f"on 127.0.0.1: sudo usermod -aG docker {user.name} (then log in again)"
    assert "permission denied while trying to connect to the Docker daemon socket" in err.detail


def test_no_docker_cli_on_the_remote_path(sshd: LabSshd, monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh works, but the remote PATH has no docker CLI (docker-py runs ``docker system
    dial-stdio`` there): the doctor says to install it, with the remote shell's words."""
    user = throwaway_user("inftnocli", shell="/bin/sh")  # the lab sshd empties its PATH
    try:
        err = _connect_error(f"ssh://{user.name}@127.0.0.1:{sshd.port}", sshd.home, monkeypatch)
    finally:
        user.remove()
    assert err.what == f"127.0.0.1 has no docker CLI on the PATH of {user.name}@127.0.0.1:{sshd.port}"
    assert "install the docker CLI there" in err.fix
    assert "docker: not found" in err.detail
