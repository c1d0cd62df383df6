"""Each daemon topology for real: the connect works, or its error is the doctor's diagnosis.

Lab daemons (a plain-TCP and a TLS dockerd next to the host's) start once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_infranode.engine import daemon
from pytest_infranode.engine import doctor
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import DaemonTLSError
from pytest_infranode.errors import DaemonUnreachable
from tests.integration.lab import CertSet
from tests.integration.lab import LabDaemon
from tests.integration.lab import make_certs
from tests.integration.lab import start_dockerd

# Ports ending in 5 (plain) and 6 (TLS), like 2375/2376, so the "other port" probe applies;
# not the standard ones, which a developer's own lab daemons may hold.
TCP_PORT = 42375
TLS_PORT = 42386


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean client environment: no DOCKER_*, no CI markers, an empty docker config dir."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "XDG_RUNTIME_DIR")}
    cfg = tmp_path / "dockercfg"
    cfg.mkdir(exist_ok=True)
    return {**keep, "DOCKER_CONFIG": str(cfg), **extra}


def connect_error(env: dict[str, str], wait: float = 0.0) -> DaemonError:
    try:
        client, _ = daemon.connect(None, environ=env, wait=wait)
    except DaemonError as err:
        return err
    client.close()
    pytest.fail(f"connected to {env.get('DOCKER_HOST')}, expected a diagnosis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_doctor_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_infranode.cli", "doctor", "--wait", "0", "--no-images", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- topologies without a second daemon ----------------------------------------------------


def test_local_socket_works(tmp_path: Path) -> None:
    client, info = daemon.connect(None, environ=base_env(tmp_path))
    client.close()
    assert (info.endpoint, info.source) == ("unix:///var/run/docker.sock", "default socket")
    assert info.api_version


def test_doctor_on_the_local_daemon_runs_every_check(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    report = doctor.run_doctor(None, env, images=["debian:12"])
    by_check = {f.check: f for f in report.findings}
    assert report.ok, doctor.render_text(report)
    assert by_check["container"].status == "ok"
    assert by_check["files"].summary == "the daemon sees this machine's files (a marker bind mount worked)"
    assert by_check["images"].status == "ok"
    result = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={doctor.DOCTOR_LABEL}"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")},
    )
    assert result.stdout.strip() == "" or shutil.which("docker") is None


def test_missing_socket(tmp_path: Path) -> None:
    path = tmp_path / "missing.sock"
    err = connect_error(base_env(tmp_path, DOCKER_HOST=f"unix://{path}"))
    assert isinstance(err, DaemonUnreachable)
    assert err.what == f"no Docker daemon socket at {path} (taken from DOCKER_HOST)"


def test_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "notasock"
    path.write_text("")
    err = connect_error(base_env(tmp_path, DOCKER_HOST=f"unix://{path}"))
    assert err.what == f"{path} is not a socket (taken from DOCKER_HOST)"


def test_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    err = connect_error(base_env(tmp_path, DOCKER_HOST=f"unix://{path}"))
    assert "exists but no daemon listens (a stale socket" in err.what
    assert "Connection refused" in str(err)


def test_missing_socket_waits_for_a_starting_daemon(tmp_path: Path) -> None:
    """A socket that appears within the wait is used (here: a relay to the real daemon)."""
    path = tmp_path / "late.sock"
    relay = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,sys,time,threading\n"
            "time.sleep(1.0)\n"
            "srv=socket.socket(socket.AF_UNIX); srv.bind(sys.argv[1]); srv.listen(8)\n"
            "def pipe(a,b):\n"
            "    while (d:=a.recv(65536)): b.sendall(d)\n"
            "    b.shutdown(socket.SHUT_WR)\n"
            "for _ in range(16):\n"
            "    c,_=srv.accept(); u=socket.socket(socket.AF_UNIX); u.connect('/var/run/docker.sock')\n"
            "    threading.Thread(target=pipe,args=(c,u),daemon=True).start()\n"
            "    threading.Thread(target=pipe,args=(u,c),daemon=True).start()\n",
            str(path),
        ]
    )
    try:
        client, info = daemon.connect(None, environ=base_env(tmp_path, DOCKER_HOST=f"unix://{path}"), wait=15)
        client.close()
        assert info.source == "DOCKER_HOST"
    finally:
        relay.kill()
        relay.wait()


@pytest.mark.parametrize(
    ("value", "words"),
    [("docker:2375", "has no scheme"), ("tcp://", "has no host"), ("foo://bar", "unknown scheme")],
)
def test_malformed_docker_host(tmp_path: Path, value: str, words: str) -> None:
    err = connect_error(base_env(tmp_path, DOCKER_HOST=value))
    assert words in err.what


def test_tcp_nothing_listening(tmp_path: Path) -> None:
    port = free_port()
    err = connect_error(base_env(tmp_path, DOCKER_HOST=f"tcp://127.0.0.1:{port}"))
    assert err.what.startswith(f"nothing listens on 127.0.0.1:{port}")
    assert "Connection refused" in str(err)


def test_no_docker_host_and_no_default_socket(tmp_path: Path) -> None:
    """2b: nothing names a daemon and nothing is at /var/run/docker.sock (nor at the rootless or
    Podman sockets): the doctor runs in a private mount namespace whose /run is an empty tmpfs."""
    shell = 'mount -t tmpfs none /run && exec "$0" "$@"'
    done = subprocess.run(
        ["unshare", "-m", "--", "sh", "-c", shell, sys.executable, "-m", "pytest_infranode.cli",
         "doctor", "--wait", "0", "--no-images"],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "FAIL  connect     no Docker daemon: /var/run/docker.sock does not exist and"
        " DOCKER_HOST/DOCKER_CONTEXT are unset (no rootless or Podman socket either)"
    ) in done.stdout
    assert "fix:      install or start Docker (`sudo systemctl start docker`)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_host_that_does_not_resolve_on_gitlab(tmp_path: Path) -> None:
    """2f: GitLab's DOCKER_HOST=tcp://docker:2375 in a job without the docker:dind service."""
    env = base_env(tmp_path, DOCKER_HOST="tcp://docker:2375", GITLAB_CI="true")
    err = connect_error(env)
    assert isinstance(err, DaemonUnreachable)
    assert err.what == "the daemon host 'docker' does not resolve"
    cli = run_doctor_cli(env)
    assert cli.returncode == 1
    assert "evidence: getaddrinfo('docker'): [Errno" in cli.stdout
    gitlab = "GitLab CI: the `docker` host is the docker:dind service: add `services: [docker:dind]`"
    assert gitlab in cli.stdout


def test_missing_context_is_an_error(tmp_path: Path) -> None:
    err = connect_error(base_env(tmp_path, DOCKER_CONTEXT="nope"))
    assert err.what == "docker context 'nope' does not exist (named by DOCKER_CONTEXT)"


def test_session_prints_the_doctors_diagnosis(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usage error of a pytest session is the doctor's text for the same endpoint."""
    path = pytester.path / "gone.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setenv(daemon.WAIT_ENV, "0")
    pytester.makepyfile("def test_x(host):\n    pass\n")
    pytester.makefile(".yaml", infranode="provisioner:\n  name: shell\n  inline: ['true']\n")
    result = pytester.runpytest("--infra-platform=debian-12")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*pytest-infranode cannot use the Docker daemon:",
            f"no Docker daemon socket at {path} (taken from DOCKER_HOST)",
            f"  where: unix://{path} (from DOCKER_HOST), waited 0.* s",
            "  fix:   is the daemon running? is DOCKER_HOST right?*",
            f"  evidence: stat {path}: no such file",
        ]
    )
    assert "Traceback" not in result.stderr.str()
    cli = run_doctor_cli({**os.environ, "DOCKER_HOST": f"unix://{path}"})
    assert cli.returncode == 1
    assert f"FAIL  connect     no Docker daemon socket at {path} (taken from DOCKER_HOST)" in cli.stdout


def test_doctor_json(tmp_path: Path) -> None:
    cli = run_doctor_cli(base_env(tmp_path, DOCKER_HOST="docker:2375", GITLAB_CI="true"), "--json")
    data = json.loads(cli.stdout)
    assert cli.returncode == 1
    assert data["ok"] is False
    assert data["ci"] == "gitlab"
    assert (
        data["checks"][0]["summary"]
        == "DOCKER_HOST='docker:2375' cannot be used: 'docker:2375' has no scheme"
    )


# --- a second dockerd: plain TCP and TLS ---------------------------------------------------


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("daemon-lab")


@pytest.fixture(scope="module")
def tcp_daemon(lab_root: Path) -> Iterator[LabDaemon]:
    lab = start_dockerd("tcp", lab_root, TCP_PORT, "172.30.95.1/24", [])
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def certs(lab_root: Path) -> CertSet:
    return make_certs(lab_root / "certs")


@pytest.fixture(scope="module")
def tls_daemon(lab_root: Path, certs: CertSet) -> Iterator[LabDaemon]:
    server = certs.server
    lab = start_dockerd(
        "tls",
        lab_root,
        TLS_PORT,
        "172.30.96.1/24",
        [
            "--tlsverify",
            "--tlscacert",
            f"{server}/ca.pem",
            "--tlscert",
            f"{server}/cert.pem",
            "--tlskey",
            f"{server}/key.pem",
        ],
    )
    yield lab
    lab.stop()


def tls_env(tmp_path: Path, url: str, cert_dir: Path, **extra: str) -> dict[str, str]:
    return base_env(tmp_path, DOCKER_HOST=url, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(cert_dir), **extra)


@pytest.mark.slow
def test_plain_tcp_daemon_works_and_ignores_proxies(tmp_path: Path, tcp_daemon: LabDaemon) -> None:
    env = base_env(tmp_path, DOCKER_HOST=tcp_daemon.url, HTTP_PROXY="http://127.0.0.1:9")
    client, info = daemon.connect(None, environ=env, wait=30)
    client.close()
    assert (info.endpoint, info.source) == (tcp_daemon.url, "DOCKER_HOST")
    report = doctor.run_doctor(None, env, wait=30)
    assert report.ok, doctor.render_text(report)
    warnings = [f.summary for f in report.findings if f.status == "warn"]
    assert any("NO_PROXY does not cover the daemon '127.0.0.1'" in w for w in warnings)


@pytest.mark.slow
def test_context_to_the_tcp_daemon(tmp_path: Path, tcp_daemon: LabDaemon) -> None:
    env = base_env(tmp_path)
    cfg = Path(env["DOCKER_CONFIG"])
    meta = cfg / "contexts" / "meta" / daemon.context_id("lab-tcp")
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": "lab-tcp", "Metadata": {}, "Endpoints": {"docker": {"Host": tcp_daemon.url}}})
    )
    (cfg / "config.json").write_text(json.dumps({"currentContext": "lab-tcp"}))
    client, info = daemon.connect(None, environ=env, wait=30)
    client.close()
    assert info.endpoint == tcp_daemon.url
    assert info.source == f"context 'lab-tcp' (currentContext in {cfg / 'config.json'})"


@pytest.mark.slow
def test_tls_daemon_works_despite_ca_bundle_variables(
    tmp_path: Path, tls_daemon: LabDaemon, certs: CertSet
) -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    env = tls_env(tmp_path, tls_daemon.url, certs.client, REQUESTS_CA_BUNDLE=bundle, CURL_CA_BUNDLE=bundle)
    client, info = daemon.connect(None, environ=env, wait=10)
    client.close()
    assert info.endpoint == tls_daemon.url
    report = doctor.run_doctor(None, env, wait=10)
    assert report.ok, doctor.render_text(report)
    assert any("docker-py #2433" in f.summary for f in report.findings if f.status == "warn")


@pytest.mark.slow
def test_tls_context_with_stored_certificates(tmp_path: Path, tls_daemon: LabDaemon, certs: CertSet) -> None:
    env = base_env(tmp_path, DOCKER_CONTEXT="lab-tls")
    cfg = Path(env["DOCKER_CONFIG"])
    meta = cfg / "contexts" / "meta" / daemon.context_id("lab-tls")
    meta.mkdir(parents=True)
    endpoint = {"Host": tls_daemon.url, "SkipTLSVerify": False}
    (meta / "meta.json").write_text(json.dumps({"Name": "lab-tls", "Endpoints": {"docker": endpoint}}))
    shutil.copytree(certs.client, cfg / "contexts" / "tls" / daemon.context_id("lab-tls") / "docker")
    client, info = daemon.connect(None, environ=env, wait=10)
    client.close()
    assert info.source == "context 'lab-tls' (DOCKER_CONTEXT)"


@pytest.mark.slow
def test_tls_wrong_ca(tmp_path: Path, tls_daemon: LabDaemon, certs: CertSet) -> None:
    other = make_certs(tmp_path / "other", cn="some other CA")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(other.client / "ca.pem", mixed / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(certs.client / name, mixed / name)
    err = connect_error(tls_env(tmp_path, tls_daemon.url, mixed))
    assert isinstance(err, DaemonTLSError)
    assert err.what == (
        f"the daemon's certificate is not signed by {mixed}/ca.pem (issuer: CN=infranode lab CA; "
        "ca.pem is CN=some other CA)"
    )


@pytest.mark.slow
def test_tls_client_certificate_rejected(tmp_path: Path, tls_daemon: LabDaemon, certs: CertSet) -> None:
    other = make_certs(tmp_path / "other", cn="some other CA")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(certs.client / "ca.pem", mixed / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(other.client / name, mixed / name)
    err = connect_error(tls_env(tmp_path, tls_daemon.url, mixed))
    assert err.what == (
        "the daemon rejected the client certificate: cert.pem is issued by CN=some other CA, "
        "the daemon's CA is CN=infranode lab CA"
    )


@pytest.mark.slow
def test_tls_expired_client_certificate(tmp_path: Path, tls_daemon: LabDaemon) -> None:
    expired = make_certs(tmp_path / "expired", client_days=-1)
    err = connect_error(tls_env(tmp_path, tls_daemon.url, expired.client))
    assert err.what.startswith(f"the client certificate {expired.client}/cert.pem expired on ")


@pytest.mark.slow
def test_tls_hostname_mismatch(tmp_path: Path, tls_daemon: LabDaemon, certs: CertSet) -> None:
    err = connect_error(tls_env(tmp_path, f"tcp://localhost:{TLS_PORT}", certs.client))
    assert err.what == "the daemon's certificate is for [IP:127.0.0.1, DNS:docker], not for 'localhost'"
    assert f"DOCKER_HOST=tcp://127.0.0.1:{TLS_PORT}" in err.fix


@pytest.mark.slow
def test_tls_files_missing(tmp_path: Path, tls_daemon: LabDaemon) -> None:
    empty = tmp_path / "nocerts"
    empty.mkdir()
    err = connect_error(tls_env(tmp_path, tls_daemon.url, empty, GITLAB_CI="true"))
    origin = f"DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH={empty}"
    assert err.what == f"TLS is required ({origin}) but the client certificates are missing"
    assert "DOCKER_TLS_CERTDIR=/certs on the job AND the service" in err.fix


@pytest.mark.slow
def test_plain_client_against_the_tls_port(tmp_path: Path, tls_daemon: LabDaemon) -> None:
    err = connect_error(base_env(tmp_path, DOCKER_HOST=tls_daemon.url))
    assert err.what == f"127.0.0.1:{TLS_PORT} requires TLS but the client speaks plain HTTP"
    assert "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH" in err.fix


@pytest.mark.slow
def test_tls_client_against_the_plain_port(tmp_path: Path, tcp_daemon: LabDaemon, certs: CertSet) -> None:
    err = connect_error(tls_env(tmp_path, tcp_daemon.url, certs.client))
    assert err.what.startswith(f"127.0.0.1:{TCP_PORT} speaks plain HTTP but the client is set up for TLS")
    assert "WRONG_VERSION_NUMBER" in str(err)


@pytest.mark.slow
def test_plain_port_closed_but_tls_port_answers(tmp_path: Path, tls_daemon: LabDaemon) -> None:
    """GitLab's classic: DOCKER_HOST on 2375 while docker:dind listens with TLS on 2376."""
    url = f"tcp://127.0.0.1:{TLS_PORT - 1}"
    err = connect_error(base_env(tmp_path, DOCKER_HOST=url, GITLAB_CI="true"), wait=30)
    assert (
        err.what
        == f"wrong port: 127.0.0.1:{TLS_PORT - 1} is closed and 127.0.0.1:{TLS_PORT} is the daemon (TLS)"
    )
    assert "GitLab CI:" in err.fix
    assert "waited 0." in err.where  # the other port answers: no point waiting 30 s


@pytest.mark.slow
def test_doctor_cli_on_the_tls_daemon(tmp_path: Path, tls_daemon: LabDaemon, certs: CertSet) -> None:
    cli = run_doctor_cli(tls_env(tmp_path, tls_daemon.url, certs.client))
    report_lines = cli.stdout.splitlines()
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert report_lines[0] == f"infranode doctor: {tls_daemon.url} [DOCKER_HOST]"
    assert any(line.startswith("OK    engine      Docker ") for line in report_lines)
    # the lab daemon has no debian:12: the container checks are skipped with a warning
    assert any("debian:12 is not on the daemon" in line for line in report_lines)
