"""DOCKER_HOST=ssh://root@127.0.0.1:PORT for real (topology 6): a private sshd on loopback with
its own host key and authorized_keys, and an isolated client HOME (paramiko, docker-py's default
ssh transport, reads ``$HOME/.ssh/config`` and ``$HOME/.ssh/known_hosts``). The daemon behind it
is this machine's own, reached through ``docker system dial-stdio`` on the ssh side.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
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

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd() -> Iterator[LabSshd]:
    base = Path(tempfile.mkdtemp(prefix="inft-ssh-"))
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
