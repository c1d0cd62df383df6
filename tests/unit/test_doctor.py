"""The doctor's verdicts, one per topology row of daemon-topologies.md (pure: no daemon)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import yaml

from pytest_infranode.engine import doctor
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.daemon import resolve_endpoint
from pytest_infranode.engine.doctor import CertInfo
from pytest_infranode.engine.doctor import Finding
from pytest_infranode.engine.doctor import PortFacts
from pytest_infranode.engine.doctor import SocketFacts
from pytest_infranode.engine.doctor import TLSFacts
from pytest_infranode.errors import DaemonPermissionDenied
from pytest_infranode.errors import DaemonTLSError
from pytest_infranode.errors import DaemonUnreachable

CA = CertInfo("CN=ci-lab docker CA", "CN=ci-lab docker CA")
OTHER_CA = CertInfo("CN=another CA", "CN=another CA")
SERVER = CertInfo(
    "CN=docker", "CN=ci-lab docker CA", ("IP:127.0.0.1", "DNS:docker"), "Dec 24 11:00:00 2099 GMT", 4e9
)
CLIENT = CertInfo("CN=docker:dind client", "CN=ci-lab docker CA", (), "Dec 24 11:00:00 2099 GMT", 4e9)
EXPIRED = CertInfo("CN=docker:dind client", "CN=ci-lab docker CA", (), "Nov 23 11:00:00 2026 GMT", 1.0)
GOOD_TLS = TLSFacts(
    "DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=/certs/client", "/certs/client", ca=CA, cert=CLIENT
)
NOW = 2e9


def sock(**kw: object) -> SocketFacts:
    base: dict[str, object] = {
        "path": "/var/run/docker.sock",
        "exists": True,
        "is_socket": True,
        "mode": "srw-rw----",
        "owner": "root",
        "group": "docker",
        "gid": 998,
        "user": "cilab",
        "user_groups": ("cilab",),
        "process_gids": (1001,),
    }
    base.update(kw)
    return SocketFacts(**base)  # type: ignore[arg-type]


# --- CI detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "ci"),
    [
        ({"GITHUB_ACTIONS": "true"}, "github"),
        ({"GITLAB_CI": "true"}, "gitlab"),
        ({"CIRCLECI": "true"}, "circleci"),
        ({"TRAVIS": "true"}, "travis"),
        ({"JENKINS_URL": "http://j/"}, "jenkins"),
        ({"BITBUCKET_BUILD_NUMBER": "7"}, "bitbucket"),
        ({"TF_BUILD": "True"}, "azure"),
        ({"CI": "true"}, ""),
        ({}, ""),
    ],
)
def test_detect_ci(env: dict[str, str], ci: str) -> None:
    assert doctor.detect_ci(env) == ci


def test_every_ci_has_a_no_daemon_hint() -> None:
    for _env, key, title in doctor.CI_SERVICES:
        assert doctor.ci_hint(key, "no-daemon").startswith(f"{title}: ")
    assert doctor.ci_hint("", "no-daemon") == ""


# --- unix sockets (rows 2a-2d, 3a, 3c) ----------------------------------------------------


def test_missing_socket_from_docker_host_2a() -> None:
    f = doctor.verdict_socket(SocketFacts("/tmp/ci-lab-missing.sock", exists=False), "DOCKER_HOST", "")
    assert f.status == "fail"
    assert f.summary == "no Docker daemon socket at /tmp/ci-lab-missing.sock (taken from DOCKER_HOST)"
    assert "is DOCKER_HOST right?" in f.fix


def test_no_daemon_at_all_2b_with_ci_hint() -> None:
    f = doctor.verdict_socket(SocketFacts("/var/run/docker.sock", exists=False), "default socket", "travis")
    assert "/var/run/docker.sock does not exist and DOCKER_HOST/DOCKER_CONTEXT are unset" in f.summary
    assert "Travis CI: add `services: [docker]`" in f.fix


def test_stale_socket_2c() -> None:
    f = doctor.verdict_socket(sock(connect_errno=errno.ECONNREFUSED), "DOCKER_HOST", "")
    assert "exists but no daemon listens (a stale socket" in f.summary
    assert "connect: Connection refused" in f.evidence[-1]


def test_not_a_socket_2d() -> None:
    facts = sock(path="/tmp/ci-lab-notasock", is_socket=False, mode="-rw-r--r--", group="root")
    f = doctor.verdict_socket(facts, "DOCKER_HOST", "")
    assert f.summary == "/tmp/ci-lab-notasock is not a socket (taken from DOCKER_HOST)"


def test_permission_denied_not_in_group_3a() -> None:
    f = doctor.verdict_socket(sock(connect_errno=errno.EACCES), "default socket", "jenkins")
    assert f.kind == "permission"
    assert f.summary == "permission denied on /var/run/docker.sock: user 'cilab' is not in group 'docker'"
    assert "`sudo usermod -aG docker cilab`" in f.fix
    assert "--group-add $(stat -c %g /var/run/docker.sock)" in f.fix
    assert "Jenkins:" in f.fix
    assert "srw-rw---- root:docker" in f.evidence[0]
    assert isinstance(f.to_error("x"), DaemonPermissionDenied)


def test_permission_denied_session_older_than_group_3c() -> None:
    f = doctor.verdict_socket(sock(connect_errno=errno.EACCES, listed_in_group=True), "default socket", "")
    assert "you were added to 'docker' but this session predates it" in f.summary
    assert "newgrp docker" in f.fix
    assert "this process lacks gid 998" in f.evidence[-1]


def test_working_socket() -> None:
    assert doctor.verdict_socket(sock(), "default socket", "").status == "ok"


# --- DOCKER_HOST syntax (2g) --------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "ssh://root@h", "tcp://[::1]:2376"]
)
def test_good_addresses(value: str) -> None:
    assert doctor.host_syntax_problem(value) is None


# --- tcp (2e, 2f, 5*, 5m) -----------------------------------------------------------------

REFUSED = PortFacts("127.0.0.1", 2399, connect_error="[Errno 111] Connection refused", refused=True)


def test_nothing_listening_2e() -> None:
    f = doctor.verdict_tcp("tcp://127.0.0.1:2399", REFUSED, None, "", "")
    assert f.summary.startswith("nothing listens on 127.0.0.1:2399")
    assert "2375 = plain HTTP, 2376 = TLS" in f.fix


def test_host_does_not_resolve_2f_gitlab() -> None:
    facts = PortFacts("docker", 2375, resolve_error="[Errno -3] Temporary failure in name resolution")
    f = doctor.verdict_tcp("tcp://docker:2375", facts, None, "", "gitlab")
    assert f.summary == "the daemon host 'docker' does not resolve"
    assert "GitLab CI: the `docker` host is the docker:dind service: add `services: [docker:dind]`" in f.fix


def test_host_does_not_resolve_without_ci_has_no_gitlab_words() -> None:
    facts = PortFacts("docker", 2375, resolve_error="[Errno -2] Name or service not known")
    assert "GitLab" not in doctor.verdict_tcp("tcp://docker:2375", facts, None, "", "").fix


def test_gitlab_2375_while_dind_has_tls_5m() -> None:
    closed = PortFacts("docker", 2375, connect_error="[Errno 111] Connection refused", refused=True)
    sibling = PortFacts("docker", 2376, speaks="tls")
    f = doctor.verdict_tcp("tcp://docker:2375", closed, None, "", "gitlab", sibling=sibling)
    assert f.summary == "wrong port: docker:2375 is closed and docker:2376 is the daemon (TLS)"
    assert "DOCKER_HOST=tcp://docker:2376 with DOCKER_TLS_VERIFY=1" in f.fix
    assert "GitLab CI:" in f.fix


def test_tls_client_against_plain_port_5h() -> None:
    error = "SSLError caused by SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
    f = doctor.verdict_tcp(
        "tcp://127.0.0.1:2375", PortFacts("127.0.0.1", 2375, speaks="http"), GOOD_TLS, error, ""
    )
    assert f.kind == "tls"
    assert f.summary.startswith("127.0.0.1:2375 speaks plain HTTP but the client is set up for TLS")
    assert "unset DOCKER_TLS_VERIFY and DOCKER_CERT_PATH" in f.fix
    assert isinstance(f.to_error("x"), DaemonTLSError)


def test_plain_client_against_tls_port_5i() -> None:
    error = (
        "400 Client Error for http://127.0.0.1:2376/v1.41/_ping: Bad Request "
        '("Client sent an HTTP request to an HTTPS server.")'
    )
    f = doctor.verdict_tcp(
        "tcp://127.0.0.1:2376", PortFacts("127.0.0.1", 2376, speaks="tls"), None, error, ""
    )
    assert f.summary == "127.0.0.1:2376 requires TLS but the client speaks plain HTTP"
    assert "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH" in f.fix
    assert "docker-py ignores DOCKER_TLS=1" in f.fix


def test_tls_files_missing_5b_gitlab() -> None:
    tls = TLSFacts(
        "DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=/certs/client", "/certs/client", missing=("cert.pem",)
    )
    f = doctor.verdict_tls_files(tls, "gitlab", NOW)
    assert f is not None
    assert f.summary == (
        "TLS is required (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=/certs/client) but the client certificates "
        "are missing"
    )
    assert "missing in /certs/client: cert.pem" in f.evidence[0]
    assert "DOCKER_TLS_CERTDIR=/certs on the job AND the service" in f.fix


def test_cert_path_expanded_too_early_is_flagged() -> None:
    tls = TLSFacts("DOCKER_TLS_VERIFY=1", "/client", missing=("ca.pem", "cert.pem", "key.pem"))
    f = doctor.verdict_tls_files(tls, "", NOW)
    assert f is not None
    assert "$DOCKER_TLS_CERTDIR/client" in f.evidence[1]


def test_expired_client_cert_is_found_locally() -> None:
    tls = TLSFacts("o", "/certs/client", ca=CA, cert=EXPIRED)
    f = doctor.verdict_tls_files(tls, "", NOW)
    assert f is not None
    assert f.summary == "the client certificate /certs/client/cert.pem expired on Nov 23 11:00:00 2026 GMT"


def test_wrong_ca_5e() -> None:
    tls = TLSFacts("o", "/certs/client", ca=OTHER_CA, cert=CLIENT)
    error = "SSLCertVerificationError: certificate verify failed: unable to get local issuer certificate"
    f = doctor.verdict_tcp(
        "tcp://127.0.0.1:2376", PortFacts("127.0.0.1", 2376, speaks="tls", server_cert=SERVER), tls, error, ""
    )
    assert f.summary == (
        "the daemon's certificate is not signed by /certs/client/ca.pem (issuer: CN=ci-lab docker CA; "
        "ca.pem is CN=another CA)"
    )


def test_hostname_mismatch_5g() -> None:
    facts = PortFacts("localhost", 2376, speaks="tls", server_cert=SERVER)
    f = doctor.verdict_tcp("tcp://localhost:2376", facts, GOOD_TLS, "Hostname mismatch", "")
    assert f.summary == "the daemon's certificate is for [IP:127.0.0.1, DNS:docker], not for 'localhost'"
    assert "DOCKER_HOST=tcp://127.0.0.1:2376" in f.fix


def test_client_cert_rejected_5f() -> None:
    foreign = CertInfo("CN=me", "CN=another CA", (), "Dec 24 11:00:00 2099 GMT", 4e9)
    tls = TLSFacts("o", "/certs/client", ca=CA, cert=foreign)
    error = "SSLError caused by SSLError: [SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"
    facts = PortFacts("127.0.0.1", 2376, speaks="tls", server_cert=SERVER)
    f = doctor.verdict_tcp("tcp://127.0.0.1:2376", facts, tls, error, "")
    assert f.summary == (
        "the daemon rejected the client certificate: cert.pem is issued by CN=another CA, "
        "the daemon's CA is CN=ci-lab docker CA"
    )


@pytest.mark.parametrize(
    ("host", "sans", "ok"),
    [
        ("127.0.0.1", ("IP:127.0.0.1", "DNS:docker"), True),
        ("docker", ("IP:127.0.0.1", "DNS:docker"), True),
        ("localhost", ("IP:127.0.0.1", "DNS:docker"), False),
        ("a.example.com", ("DNS:*.example.com",), True),
        ("::1", ("IP:0:0:0:0:0:0:0:1",), True),
    ],
)
def test_host_matches(host: str, sans: tuple[str, ...], ok: bool) -> None:
    assert doctor.host_matches(host, sans) is ok


def test_cert_info_from_ssl_dict() -> None:
    decoded = {
        "subject": ((("commonName", "docker"),),),
        "issuer": ((("commonName", "ci-lab docker CA"),),),
        "notAfter": "Dec 24 11:00:00 2026 GMT",
        "subjectAltName": (("IP Address", "127.0.0.1\n"), ("DNS", "docker")),
    }
    info = doctor.cert_info_from_dict(decoded)
    assert info == CertInfo(
        "CN=docker",
        "CN=ci-lab docker CA",
        ("IP:127.0.0.1", "DNS:docker"),
        "Dec 24 11:00:00 2026 GMT",
        1798110000.0,
    )


def test_sibling_port() -> None:
    assert (doctor.sibling_port(2375), doctor.sibling_port(2376), doctor.sibling_port(2399)) == (
        2376,
        2375,
        None,
    )


# --- environment (rows 4h, 5) -------------------------------------------------------------


def test_ca_bundle_warning_only_for_tls() -> None:
    env = {"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    found = doctor.environment_findings(env, "tcp", "127.0.0.1", tls=True)
    assert [f.status for f in found] == ["warn"]
    assert "docker-py #2433" in found[0].summary
    assert doctor.environment_findings(env, "tcp", "127.0.0.1", tls=False) == []


def test_proxy_warning_unless_no_proxy_covers_the_host() -> None:
    env = {"HTTP_PROXY": "http://127.0.0.1:3999"}
    found = doctor.environment_findings(env, "tcp", "127.0.0.1", tls=False)
    assert "NO_PROXY does not cover the daemon '127.0.0.1'" in found[0].summary
    assert (
        doctor.environment_findings({**env, "NO_PROXY": "localhost,127.0.0.1"}, "tcp", "127.0.0.1", tls=False)
        == []
    )
    assert doctor.environment_findings({**env, "no_proxy": ".internal"}, "tcp", "d.internal", tls=False) == []
    assert doctor.environment_findings(env, "unix", "", tls=False) == []


# --- checks on a working daemon, rendering ------------------------------------------------


def test_bind_mount_verdicts() -> None:
    assert doctor.verdict_bind_mount("seen", "", "").status == "ok"
    f = doctor.verdict_bind_mount("refused", "bind source path does not exist: /tmp/x", "circleci")
    assert f.status == "info"
    assert "cannot see this machine's files" in f.summary
    assert "CircleCI: remote docker never sees the job's files" in f.fix


def test_images_verdict() -> None:
    assert doctor.verdict_images(["debian:12"], ["debian:12"]).status == "ok"
    f = doctor.verdict_images(["debian:12"], ["debian:12", "debian:13"])
    assert (f.status, f.evidence[1]) == ("info", "missing: debian:13")
    assert doctor.verdict_images([], ["debian:13"]).status == "warn"


def test_engine_verdict_podman_and_cgroup_v2() -> None:
    info = DaemonInfo(
        "unix:///run/podman/podman.sock",
        "Podman socket",
        "4.3.1",
        "1.41",
        "2",
        "systemd",
        "Debian",
        True,
        runtime="crun",
    )
    found = doctor.verdict_engine(info)
    assert found[0].summary.startswith("Podman 4.3.1 (API 1.41, OCI runtime crun) on Debian")
    assert "Podman's own systemd set-up" in found[2].summary
    assert any("localhost/NAME" in f.summary for f in found)


def test_error_text_is_the_doctor_text() -> None:
    f = Finding("connect", "fail", "no Docker daemon", ("stat x: no such file",), "start it")
    err = f.to_error("unix:///x (from DOCKER_HOST)")
    assert isinstance(err, DaemonUnreachable)
    assert str(err) == (
        "no Docker daemon\n  where: unix:///x (from DOCKER_HOST)\n  fix:   start it\n"
        "  evidence: stat x: no such file"
    )


def test_render_text_and_json() -> None:
    report = doctor.Report("tcp://docker:2375", "DOCKER_HOST", "gitlab")
    report.findings += [
        Finding("endpoint", "ok", "tcp://docker:2375 (from DOCKER_HOST)"),
        Finding(
            "connect",
            "fail",
            "the daemon host 'docker' does not resolve",
            ("getaddrinfo: x",),
            "a\n         b",
        ),
    ]
    text = doctor.render_text(report)
    assert text.splitlines()[0] == "infranode doctor: tcp://docker:2375 [DOCKER_HOST] on GitLab CI"
    assert "FAIL  connect     the daemon host 'docker' does not resolve" in text
    assert "fix:      a\n" + " " * 23 + "b" in text
    assert text.endswith("verdict: NOT ready (0.0 s)")
    data = json.loads(doctor.render_json(report))
    assert data["ok"] is False
    assert data["ci"] == "gitlab"
    assert data["checks"][1]["evidence"] == ["getaddrinfo: x"]


# --- CI templates: they parse, run the doctor first, and set up a topology the lab tests prove --

CI_DIR = Path(__file__).parents[2] / "examples" / "ci"
TEMPLATES = [
    "github-actions.yml",
    "gitlab-ci.yml",
    "circleci.yml",
    "bitbucket-pipelines.yml",
    "azure-pipelines.yml",
    "travis.yml",
    "Jenkinsfile",
]


@pytest.mark.parametrize("name", TEMPLATES)
def test_ci_template_runs_the_doctor_then_the_suite(name: str) -> None:
    text = (CI_DIR / name).read_text()
    if name.endswith(".yml"):
        assert isinstance(yaml.safe_load(text), dict)
    doctor_at = text.index("doctor --platform debian-12")
    suite_at = text.index("pytest --infra-platform=debian-12")
    assert doctor_at < suite_at
    assert "Docker access:" in text.splitlines()[0] + text.splitlines()[1]


def test_every_detected_ci_has_a_template() -> None:
    assert len(TEMPLATES) == len(doctor.CI_SERVICES)


def test_gitlab_template_is_the_tls_lab_topology(tmp_path: Path) -> None:
    """The GitLab variables resolve to what the TLS lab test proves: tcp + TLS files in one dir,
    a host name ('docker') that the dind-like server certificate carries."""
    job = yaml.safe_load((CI_DIR / "gitlab-ci.yml").read_text())["infra"]
    assert {"name": "docker:dind", "alias": "docker"} in job["services"]
    env = {k: str(v) for k, v in job["variables"].items()}
    assert env["DOCKER_CERT_PATH"] == env["DOCKER_TLS_CERTDIR"] + "/client"
    endpoint = resolve_endpoint(None, {**env, "GITLAB_CI": "true"}, home=str(tmp_path))
    assert (endpoint.scheme, endpoint.host, endpoint.port) == ("tcp", "docker", 2376)
    assert endpoint.tls is not None
    assert endpoint.tls.cert_dir == "/certs/client"
    assert doctor.host_matches(endpoint.host, ("IP:127.0.0.1", "DNS:docker"))  # the lab's server SAN
    assert doctor.sibling_port(2375) == endpoint.port


def test_bitbucket_and_socket_templates_are_lab_topologies(tmp_path: Path) -> None:
    # Bitbucket sets DOCKER_HOST itself: plain TCP, the lab's plain dockerd topology.
    bitbucket = resolve_endpoint(None, {"DOCKER_HOST": "tcp://localhost:2375"}, home=str(tmp_path))
    assert (bitbucket.scheme, bitbucket.tls) == ("tcp", None)
    step = yaml.safe_load((CI_DIR / "bitbucket-pipelines.yml").read_text())["pipelines"]["default"][0]["step"]
    assert step["services"] == ["docker"]
    circle = yaml.safe_load((CI_DIR / "circleci.yml").read_text())["jobs"]["infra"]
    assert "machine" in circle
    for name in ("github-actions.yml", "azure-pipelines.yml", "travis.yml", "circleci.yml"):
        assert "DOCKER_HOST" not in (CI_DIR / name).read_text().split("\n", 5)[-1]


def test_gitlab_socket_binding_job_is_the_local_socket_topology(tmp_path: Path) -> None:
    """The second GitLab job sets nothing: the runner's bound socket, the default endpoint."""
    jobs = yaml.safe_load((CI_DIR / "gitlab-ci.yml").read_text())
    job = jobs["infra-socket"]
    assert "services" not in job
    assert "variables" not in job
    assert "privileged" not in str(job)
    endpoint = resolve_endpoint(None, {"GITLAB_CI": "true"}, home=str(tmp_path))
    assert (endpoint.scheme, endpoint.socket_path, endpoint.source) == (
        "unix",
        "/var/run/docker.sock",
        "default socket",
    )
    assert job["script"][-2:] == [
        "infranode doctor --platform debian-12",
        "pytest --infra-platform=debian-12",
    ]


def test_circleci_remote_docker_job_is_the_tls_lab_topology(tmp_path: Path) -> None:
    """setup_remote_docker comes before the doctor; the variables it exports (tcp on 2376, TLS
    verify, a cert directory of its own) resolve to the TLS daemon the lab tests prove."""
    job = yaml.safe_load((CI_DIR / "circleci.yml").read_text())["jobs"]["infra-remote-docker"]
    assert "docker" in job
    assert "machine" not in job
    steps = [s if isinstance(s, str) else s.get("run", "") for s in job["steps"]]
    assert steps.index("setup_remote_docker") < steps.index("infranode doctor --platform debian-12")
    env = {
        "DOCKER_HOST": "tcp://10.0.0.5:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": "/tmp/docker-certs1",
    }
    endpoint = resolve_endpoint(None, {**env, "CIRCLECI": "true"}, home=str(tmp_path))
    assert (endpoint.scheme, endpoint.port) == ("tcp", 2376)
    assert endpoint.tls is not None
    assert endpoint.tls.cert_dir == "/tmp/docker-certs1"
    text = (CI_DIR / "circleci.yml").read_text()
    assert "never sees the job's files" in text
    assert "published ports are not reachable" in text


# the words each OCI runtime answers a container start with, as Podman 4.3 relays them
RUNC_RLIMIT = (
    "runc: runc create failed: unable to start container process: error during container init: "
    "error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: "
    "OCI permission denied"
)
CRUN_RLIMIT = "crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied"
CRUN_HYBRID = (
    "OCI runtime error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2"
)


@pytest.mark.parametrize(("said", "runtime"), [(RUNC_RLIMIT, "runc"), (CRUN_RLIMIT, "crun")])
def test_rlimit_refusal_is_named_for_either_runtime(said: str, runtime: str) -> None:
    assert doctor._container_cause(said) == (
        f": {runtime} may not raise the rlimits Podman asks for (no CAP_SYS_RESOURCE)"
    )
    assert "set default_ulimits in containers.conf" in doctor._container_fix(said)


def test_crun_on_a_hybrid_host_names_both_ways_out() -> None:
    assert "crun refuses this hybrid cgroup host" in doctor._container_cause(CRUN_HYBRID)
    fix = doctor._container_fix(CRUN_HYBRID)
    assert 'runtime = "runc"' in fix
    assert "systemd.unified_cgroup_hierarchy=1" in fix


def test_unknown_start_failure_gets_no_invented_cause() -> None:
    assert doctor._container_cause("no such image") == ""
    assert doctor._container_fix("no such image") == "see the daemon's log for this error"


def _info(
    cgroup: str, security: tuple[str, ...] = (), podman: bool = False, rootless: bool = False
) -> DaemonInfo:
    return DaemonInfo(
        "unix:///d",
        "default",
        "26.1",
        "1.45",
        cgroup,
        "systemd",
        "Ubuntu",
        podman,
        rootless=rootless,
        security=security,
    )


def test_engine_verdict_names_security_options_and_the_systemd_recipe() -> None:
    found = doctor.verdict_engine(_info("2", ("apparmor", "seccomp", "cgroupns")))
    by = {(f.check, f.status): f.summary for f in found}
    assert by[("cgroup", "ok")] == "cgroup v2, driver systemd; security options: apparmor, seccomp, cgroupns"
    recipe = by[("systemd", "info")]
    assert "a private cgroup namespace whose cgroup2 mount PID 1 remounts read-write" in recipe
    assert "AppArmor unconfined" in recipe
    assert "seccomp stays the daemon's default" in recipe
    v1 = {f.check: f.summary for f in doctor.verdict_engine(_info("1", ("seccomp",)))}
    assert "the host's cgroup namespace with /sys/fs/cgroup bound read-write" in v1["systemd"]
    assert "no AppArmor profile to relax" in v1["systemd"]


def test_engine_verdict_names_the_rootless_recipe_and_the_v1_dead_end() -> None:
    v2 = doctor.verdict_engine(_info("2", ("seccomp", "rootless", "cgroupns"), rootless=True))
    recipe = {(f.check, f.status): f.summary for f in v2}[("systemd", "info")]
    assert "PID 1 mounts afresh over Docker's read-only one" in recipe
    assert "hands every controller down" in recipe
    assert not [f for f in v2 if f.status == "warn"]
    v1 = doctor.verdict_engine(_info("1", ("seccomp", "rootless"), rootless=True))
    warned = [f for f in v1 if f.status == "warn"]
    assert [f.check for f in warned] == ["systemd"]
    assert "rootless Docker on cgroup v1" in warned[0].summary
    assert "systemd.unified_cgroup_hierarchy=1" in warned[0].fix


def test_engine_verdict_says_what_is_unproven_under_selinux_and_userns() -> None:
    said = " ".join(f.summary for f in doctor.verdict_engine(_info("2", ("selinux", "userns"))))
    assert "container_manage_cgroup" in said
    assert "userns-remap" in said


@pytest.mark.parametrize(
    ("output", "status", "words"),
    [
        ("cgroup=rw\nsandbox=ok\n", "ok", "can sandbox units"),
        ("cgroup=rw\nsandbox=no-cap-sys-admin\n", "warn", "lacks CAP_SYS_ADMIN"),
        ("cgroup=rw\nsandbox=mount-denied\n", "warn", "refuses mounts in a new mount namespace"),
        ("cgroup=rw\nsandbox=unknown\n", "info", "could not be asked"),
        (
            "infranode: /sys/fs/cgroup stays read-only\ncgroup=ro\nsandbox=ok\n",
            "fail",
            "cgroup tree is read-only",
        ),
    ],
)
def test_systemd_probe_verdicts(output: str, status: str, words: str) -> None:
    found = doctor.verdict_systemd(output, "RECIPE")
    assert found.check == "systemd"
    assert found.status == status
    assert words in found.summary
    if status in ("warn", "fail"):
        assert found.fix
        assert found.evidence
