"""``infranode doctor``: what is wrong with the Docker daemon, with the evidence and the fix.

Three layers, kept apart so the verdicts can be unit-tested without a daemon:

* facts (frozen dataclasses) gathered by small probing functions (``probe_*``, ``read_*``):
  a ``stat`` of a socket, a TCP connect, one plain HTTP request, one TLS handshake;
* pure verdict functions (``verdict_*``, ``environment_findings``, ``ci_hint``) turning facts
  into :class:`Finding` values: the cause, the evidence, the fix (for the CI service when one is
  detected from the environment);
* :func:`run_doctor`, which connects, runs the checks on a working daemon (a throwaway
  container, a marker bind mount, the platform images) and returns a :class:`Report`.

``daemon.connect`` raises ``finding.to_error(...)``: a pytest session that cannot reach the
daemon prints the same diagnosis as ``infranode doctor``.
"""

from __future__ import annotations

import errno
import grp
import ipaddress
import json
import os
import pwd
import re
import shlex
import socket
import ssl
import stat
import tempfile
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from pytest_infranode import sandbox
from pytest_infranode.engine import containers
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import DaemonPermissionDenied
from pytest_infranode.errors import DaemonTLSError
from pytest_infranode.errors import DaemonUnreachable

if TYPE_CHECKING:
    from pytest_infranode.engine.api import DaemonInfo
    from pytest_infranode.engine.daemon import TLSFiles

Status = Literal["ok", "info", "warn", "fail"]
Kind = Literal["unreachable", "permission", "tls", "other"]

# --------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the doctor's report: a check, its status, the cause, evidence and the fix."""

    check: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""
    kind: Kind = "unreachable"

    def to_error(self, where: str) -> DaemonError:
        """The same diagnosis as an exception (what / where / fix, evidence as detail)."""
        cls: type[DaemonError] = {
            "unreachable": DaemonUnreachable,
            "permission": DaemonPermissionDenied,
            "tls": DaemonTLSError,
            "other": DaemonError,
        }[self.kind]
        detail = "\n".join(f"  evidence: {line}" for line in self.evidence)
        return cls(self.summary, where=where, fix=self.fix, detail=detail)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the doctor needs from one X.509 certificate."""

    subject: str
    issuer: str
    sans: tuple[str, ...] = ()
    not_after: str = ""
    expires_at: float = 0.0

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and self.expires_at < now


@dataclass(frozen=True, slots=True)
class SocketFacts:
    """A unix socket seen from this process."""

    path: str
    exists: bool
    is_socket: bool = False
    connect_errno: int | None = None
    mode: str = ""
    owner: str = ""
    group: str = ""
    gid: int = -1
    user: str = ""
    user_groups: tuple[str, ...] = ()
    process_gids: tuple[int, ...] = ()
    listed_in_group: bool = False


@dataclass(frozen=True, slots=True)
class PortFacts:
    """A TCP port: does it resolve, accept, and speak plain HTTP or TLS."""

    host: str
    port: int
    resolve_error: str = ""
    connect_error: str = ""
    refused: bool = False
    speaks: Literal["tls", "http", "unknown", ""] = ""
    server_cert: CertInfo | None = None

    @property
    def answers(self) -> bool:
        return not self.resolve_error and not self.connect_error


@dataclass(frozen=True, slots=True)
class TLSFacts:
    """The client's TLS files: which are missing, and what the certificates say."""

    origin: str
    cert_dir: str
    missing: tuple[str, ...] = ()
    ca: CertInfo | None = None
    cert: CertInfo | None = None
    unreadable: tuple[str, ...] = ()


@dataclass(slots=True)
class Report:
    """The whole doctor run, rendered by ``infranode doctor`` as text or JSON."""

    endpoint: str
    source: str
    ci: str
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "endpoint": self.endpoint,
            "source": self.source,
            "ci": self.ci or None,
            "seconds": round(self.seconds, 2),
            "checks": [f.as_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------------------------
# CI services

CI_SERVICES: tuple[tuple[str, str, str], ...] = (
    ("GITHUB_ACTIONS", "github", "GitHub Actions"),
    ("GITLAB_CI", "gitlab", "GitLab CI"),
    ("CIRCLECI", "circleci", "CircleCI"),
    ("TRAVIS", "travis", "Travis CI"),
    ("JENKINS_URL", "jenkins", "Jenkins"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket", "Bitbucket Pipelines"),
    ("TF_BUILD", "azure", "Azure Pipelines"),
)
CI_TITLES = {key: title for _env, key, title in CI_SERVICES}


def detect_ci(environ: Mapping[str, str]) -> str:
    """The CI service this runs on (``github``, ``gitlab`` …), or "" when none is detected."""
    for env, key, _title in CI_SERVICES:
        if environ.get(env):
            return key
    return ""


_GITLAB_TLS = (
    "use the docker:dind service with TLS: `services: [docker:dind]` and, on the job, "
    "DOCKER_HOST=tcp://docker:2376, DOCKER_TLS_CERTDIR=/certs, DOCKER_TLS_VERIFY=1, "
    "DOCKER_CERT_PATH=/certs/client (ci/gitlab-ci.yml)"
)

_CI_HINTS: dict[str, dict[str, str]] = {
    "no-daemon": {
        "github": "run the job on an `ubuntu-*` runner (Docker is installed there); in a `container:` "
        "job mount the socket: `options: -v /var/run/docker.sock:/var/run/docker.sock`",
        "gitlab": _GITLAB_TLS + "; or a runner that mounts /var/run/docker.sock",
        "circleci": "use a `machine:` executor (ci/circleci.yml), or add `- setup_remote_docker` before "
        "this step in a docker executor",
        "travis": "add `services: [docker]` to .travis.yml",
        "jenkins": "give the agent the host's socket: `-v /var/run/docker.sock:/var/run/docker.sock "
        "--group-add $(stat -c %g /var/run/docker.sock)` (ci/Jenkinsfile)",
        "bitbucket": "add `services: [docker]` to the step; the daemon is then tcp://localhost:2375",
        "azure": "use a Microsoft-hosted `ubuntu-latest` agent; a container job must mount the socket",
    },
    "permission": {
        "github": "in a `container:` job add `options: --group-add <gid of the socket>`; hosted runners "
        "already put `runner` in `docker`",
        "gitlab": "the runner's mounted socket belongs to the host's docker group: run the job "
        "image's user with that gid, or use docker:dind",
        "jenkins": "the agent's user lacks the socket's group (host docker gid differs from the image's): "
        "start the agent with `--group-add $(stat -c %g /var/run/docker.sock)`",
        "azure": "container jobs: add the agent user to the socket's group (`--group-add`)",
    },
    "dns": {
        "gitlab": "the `docker` host is the docker:dind service: add `services: [docker:dind]` to this "
        "job (alias `docker`)",
        "circleci": "run `- setup_remote_docker` before this step; it exports DOCKER_HOST",
        "bitbucket": "with `services: [docker]` the daemon is tcp://localhost:2375",
    },
    "refused": {
        "gitlab": 'docker:dind listens on 2376 with TLS (2375 only with DOCKER_TLS_CERTDIR: ""); the '
        "service may also still be starting",
        "bitbucket": "add `services: [docker]` to this step",
        "circleci": "run `- setup_remote_docker` before this step",
    },
    "tls-files": {
        "gitlab": "set DOCKER_TLS_CERTDIR=/certs on the job AND the service and "
        "DOCKER_CERT_PATH=/certs/client; "
        'self-managed runners must share it: `volumes = ["/certs/client"]` in config.toml',
        "circleci": "DOCKER_CERT_PATH is printed by `setup_remote_docker`: do not override it",
    },
    "plain-to-tls": {"gitlab": _GITLAB_TLS},
    "files-not-visible": {
        "gitlab": "docker:dind sees only /builds and /certs/client of the job",
        "circleci": "remote docker never sees the job's files; the `machine:` executor does",
        "bitbucket": "Bitbucket's daemon only accepts -v under $BITBUCKET_CLONE_DIR",
        "jenkins": "a mounted socket resolves paths on the host, not in the agent container",
    },
}


def ci_hint(ci: str, problem: str) -> str:
    """The CI-specific fix sentence for a problem, or "" (pure)."""
    text = _CI_HINTS.get(problem, {}).get(ci, "")
    return f"{CI_TITLES[ci]}: {text}" if text else ""


def _fix(generic: str, ci: str, problem: str) -> str:
    hint = ci_hint(ci, problem)
    return f"{generic}\n         {hint}" if hint else generic


# --------------------------------------------------------------------------------------------
# pure verdicts


def host_syntax_problem(value: str) -> tuple[str, str] | None:
    """Why a DOCKER_HOST-style address cannot be used, and the fix; None when it can.

    Mirrors what docker-py rejects (``Invalid bind address protocol`` / ``format``), but names
    the repair.
    """
    if value.startswith("/"):
        return f"{value!r} is a path, not an address", f"write it as unix://{value}"
    if "://" not in value:
        return f"{value!r} has no scheme", f"use tcp://{value} (or unix:///path/to/docker.sock)"
    scheme, _, rest = value.partition("://")
    scheme = scheme.lower()
    if scheme == "npipe":
        return "the npipe:// protocol is only supported on Windows", "use unix://, tcp:// or ssh://"
    if scheme not in ("unix", "tcp", "http", "https", "ssh"):
        return (
            f"{value!r} has an unknown scheme {scheme + '://'!r}",
            "use unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host",
        )
    if scheme in ("tcp", "http", "https", "ssh"):
        hostport = rest.split("/", 1)[0].rpartition("@")[2]
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = hostport.partition(":")
        if not host:
            return f"{value!r} has no host", f"write it as {scheme}://HOST:PORT, e.g. tcp://docker:2376"
        if not port and scheme != "ssh":
            return (
                f"{value!r} has no port",
                f"write it as tcp://{host}:2376 (TLS) or tcp://{host}:2375 (plain HTTP)",
            )
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            return f"{value!r} has an invalid port {port!r}", "use a port number, e.g. :2376"
    return None


def verdict_socket(facts: SocketFacts, source: str, ci: str) -> Finding:
    """Why a unix socket cannot be used (or ``ok``), from a stat and one connect attempt."""
    path = facts.path
    if not facts.exists:
        if source == "default socket":
            summary = (
                f"no Docker daemon: {path} does not exist and DOCKER_HOST/DOCKER_CONTEXT are unset "
                "(no rootless or Podman socket either)"
            )
            generic = (
                "install or start Docker (`sudo systemctl start docker`), or point DOCKER_HOST at a daemon"
            )
        else:
            summary = f"no Docker daemon socket at {path} (taken from {source})"
            generic = f"is the daemon running? is {source} right? start it, or correct {source}"
        return Finding(
            "connect", "fail", summary, (f"stat {path}: no such file",), _fix(generic, ci, "no-daemon")
        )
    if not facts.is_socket:
        return Finding(
            "connect",
            "fail",
            f"{path} is not a socket (taken from {source})",
            (f"stat {path}: {facts.mode} {facts.owner}:{facts.group}",),
            f"point {source if source != 'default socket' else 'DOCKER_HOST'} at the daemon's socket",
        )
    evidence = (f"{path}: {facts.mode} {facts.owner}:{facts.group}",)
    if facts.connect_errno in (errno.EACCES, errno.EPERM):
        groups = ", ".join(facts.user_groups) or "none"
        proof = (*evidence, f"user {facts.user!r}, groups of this process: {groups}")
        if facts.listed_in_group and facts.gid not in facts.process_gids:
            return Finding(
                "connect",
                "fail",
                f"permission denied on {path}: you were added to {facts.group!r} but this session "
                "predates it",
                (
                    *proof,
                    f"/etc/group lists {facts.user!r} in {facts.group!r}; this process lacks gid {facts.gid}",
                ),
                _fix("log out and in again, or run `newgrp " + facts.group + "`", ci, "permission"),
                kind="permission",
            )
        return Finding(
            "connect",
            "fail",
            f"permission denied on {path}: user {facts.user!r} is not in group {facts.group!r}",
            proof,
            _fix(
                f"`sudo usermod -aG {facts.group} {facts.user}` and start a new login session; in a "
                f"container that mounts the socket: `--group-add $(stat -c %g {path})`",
                ci,
                "permission",
            ),
            kind="permission",
        )
    if facts.connect_errno is not None:
        return Finding(
            "connect",
            "fail",
            f"the socket {path} exists but no daemon listens (a stale socket: the daemon crashed or is "
            "restarting)",
            (*evidence, f"connect: {os.strerror(facts.connect_errno)}"),
            _fix("start the daemon again (`sudo systemctl restart docker`)", ci, "no-daemon"),
        )
    return Finding("connect", "ok", f"{path} accepts connections")


def sibling_port(port: int) -> int | None:
    """The conventional other port: 2375 (plain) <-> 2376 (TLS); generally ...5 <-> ...6."""
    if port % 10 == 5:
        return port + 1
    if port % 10 == 6:
        return port - 1
    return None


def host_matches(host: str, sans: Sequence[str], subject: str = "") -> bool:
    """Whether a certificate (its SANs, else its CN) is valid for ``host`` (pure)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    names = [s for s in sans if s.startswith("DNS:")]
    for san in sans:
        kind, _, value = san.partition(":")
        if ip is not None and kind == "IP" and _same_ip(value, ip):
            return True
        if ip is None and kind == "DNS":
            value = value.lower()
            if value == host.lower():
                return True
            if value.startswith("*.") and host.lower().partition(".")[2] == value[2:]:
                return True
    if not sans and not names and subject.startswith("CN="):
        return subject[3:].lower() == host.lower()
    return False


def _same_ip(value: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(value.strip()) == ip
    except ValueError:
        return False


def verdict_tls_files(tls: TLSFacts, ci: str, now: float) -> Finding | None:
    """Missing, unreadable or expired client TLS files (5b); None when they look usable."""
    if tls.missing:
        parent = os.path.dirname(tls.cert_dir.rstrip("/"))
        evidence = [f"missing in {tls.cert_dir}: {', '.join(tls.missing)}"]
        generic = f"put ca.pem, cert.pem and key.pem in {tls.cert_dir}, or unset DOCKER_TLS_VERIFY"
        if parent == "/" and tls.cert_dir.rstrip("/") != "/certs":
            evidence.append(
                f"{tls.cert_dir} sits directly under / : was it written as $DOCKER_TLS_CERTDIR/client "
                "in the same ENV line that sets DOCKER_TLS_CERTDIR? (it expands to /client)"
            )
        return Finding(
            "tls",
            "fail",
            f"TLS is required ({tls.origin}) but the client certificates are missing",
            tuple(evidence),
            _fix(generic, ci, "tls-files"),
            kind="tls",
        )
    if tls.unreadable:
        return Finding(
            "tls",
            "fail",
            f"the TLS files in {tls.cert_dir} cannot be read ({tls.origin})",
            tuple(tls.unreadable),
            "check the files' permissions and that they are PEM certificates and keys",
            kind="tls",
        )
    if tls.cert is not None and tls.cert.expired(now):
        return Finding(
            "tls",
            "fail",
            f"the client certificate {tls.cert_dir}/cert.pem expired on {tls.cert.not_after}",
            (f"cert.pem: subject {tls.cert.subject}, issuer {tls.cert.issuer}",),
            "make a new client certificate (docker:dind makes new ones at each start)",
            kind="tls",
        )
    return None


_REJECTED_CLIENT = ("BAD_CERTIFICATE", "bad certificate", "CERTIFICATE_REQUIRED", "UNKNOWN_CA", "EXPIRED")


def verdict_tcp(
    endpoint: str,
    facts: PortFacts,
    tls: TLSFacts | None,
    error: str,
    ci: str,
    *,
    sibling: PortFacts | None = None,
    now: float = 0.0,
) -> Finding:
    """Why a tcp:// daemon cannot be used, from our own probes and docker-py's error text."""
    host, port = facts.host, facts.port
    evidence: list[str] = [f"docker-py: {error}"] if error else []
    if facts.resolve_error:
        return Finding(
            "connect",
            "fail",
            f"the daemon host {host!r} does not resolve",
            (f"getaddrinfo({host!r}): {facts.resolve_error}", *evidence),
            _fix(f"correct the host in {endpoint}, or start the service that provides it", ci, "dns"),
        )
    if not facts.answers:
        if sibling is not None and sibling.answers and sibling.speaks in ("tls", "http"):
            if sibling.speaks == "tls":
                generic = (
                    f"nothing listens on {host}:{port}, but {host}:{sibling.port} answers with TLS: use "
                    f"DOCKER_HOST=tcp://{host}:{sibling.port} with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH"
                )
            else:
                generic = (
                    f"nothing listens on {host}:{port}, but {host}:{sibling.port} answers plain HTTP: use "
                    f"DOCKER_HOST=tcp://{host}:{sibling.port} without DOCKER_TLS_VERIFY"
                )
            return Finding(
                "connect",
                "fail",
                f"wrong port: {host}:{port} is closed and {host}:{sibling.port} is the daemon "
                f"({'TLS' if sibling.speaks == 'tls' else 'plain HTTP'})",
                (f"connect {host}:{port}: {facts.connect_error}", *evidence),
                _fix(generic, ci, "refused" if sibling.speaks == "http" else "plain-to-tls"),
            )
        what = "nothing listens on" if facts.refused else "no answer from"
        return Finding(
            "connect",
            "fail",
            f"{what} {host}:{port} (is the daemon running? still starting?)",
            (f"connect {host}:{port}: {facts.connect_error}", *evidence),
            _fix(
                "start the daemon, or correct the port (2375 = plain HTTP, 2376 = TLS); "
                "INFRANODE_DOCKER_WAIT=SECONDS waits longer for a daemon that is starting",
                ci,
                "refused",
            ),
        )
    if tls is not None and facts.speaks == "http":
        return Finding(
            "tls",
            "fail",
            f"{host}:{port} speaks plain HTTP but the client is set up for TLS ({tls.origin})",
            tuple(evidence) or (f"{host}:{port} answered a plain HTTP request",),
            "unset DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, or use the daemon's TLS port (usually 2376)",
            kind="tls",
        )
    if tls is None and (facts.speaks == "tls" or "HTTPS server" in error):
        return Finding(
            "tls",
            "fail",
            f"{host}:{port} requires TLS but the client speaks plain HTTP",
            tuple(evidence) or (f"{host}:{port} answered: Client sent an HTTP request to an HTTPS server",),
            _fix(
                "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the directory with ca.pem, cert.pem, "
                "key.pem (docker-py ignores DOCKER_TLS=1)",
                ci,
                "plain-to-tls",
            ),
            kind="tls",
        )
    if tls is not None:
        problem = verdict_tls_files(tls, ci, now)
        if problem is not None:
            return problem
        server = facts.server_cert
        if server is not None:
            evidence.append(
                f"daemon cert: subject {server.subject}, issuer {server.issuer}, {', '.join(server.sans)}"
            )
        if server is not None and tls.ca is not None and server.issuer != tls.ca.subject:
            return Finding(
                "tls",
                "fail",
                f"the daemon's certificate is not signed by {tls.cert_dir}/ca.pem (issuer: {server.issuer}; "
                f"ca.pem is {tls.ca.subject})",
                tuple(evidence),
                "use the ca.pem of this daemon (dind: the /certs/client it wrote at this start)",
                kind="tls",
            )
        if server is not None and not host_matches(host, server.sans, server.subject):
            good = [s.partition(":")[2] for s in server.sans]
            return Finding(
                "tls",
                "fail",
                f"the daemon's certificate is for [{', '.join(server.sans)}], not for {host!r}",
                tuple(evidence),
                "connect by a name in the certificate, e.g. "
                f"DOCKER_HOST=tcp://{good[0] if good else '?'}:{port}",
                kind="tls",
            )
        if any(word in error for word in _REJECTED_CLIENT):
            reasons = []
            if tls.cert is not None and tls.cert.expired(now):
                reasons.append(f"cert.pem expired on {tls.cert.not_after}")
            if tls.cert is not None and server is not None and tls.cert.issuer != server.issuer:
                reasons.append(f"cert.pem is issued by {tls.cert.issuer}, the daemon's CA is {server.issuer}")
            if tls.cert is not None:
                evidence.append(
                    f"cert.pem: subject {tls.cert.subject}, issuer {tls.cert.issuer}, "
                    f"until {tls.cert.not_after}"
                )
            return Finding(
                "tls",
                "fail",
                "the daemon rejected the client certificate"
                + (f": {'; '.join(reasons)}" if reasons else " (its log says why)"),
                tuple(evidence),
                f"use the cert.pem/key.pem made by this daemon's CA ({tls.cert_dir})",
                kind="tls",
            )
        return Finding(
            "tls",
            "fail",
            f"TLS with {host}:{port} failed",
            tuple(evidence),
            f"check that {tls.cert_dir} holds the ca.pem, cert.pem and key.pem of this daemon",
            kind="tls",
        )
    return Finding(
        "connect",
        "fail",
        f"the daemon at {endpoint} does not answer the Docker API",
        tuple(evidence) or (f"{host}:{port} accepts connections",),
        _fix("is this port a Docker daemon? check DOCKER_HOST", ci, "refused"),
        kind="other",
    )


def _no_proxy_covers(host: str, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        if host.lower() == entry.lstrip(".") or host.lower().endswith("." + entry.lstrip(".")):
            return True
    return False


def environment_findings(environ: Mapping[str, str], scheme: str, host: str, tls: bool) -> list[Finding]:
    """Warnings about the environment that breaks other docker-py tools (not infranode)."""
    found: list[Finding] = []
    bundles = [f"{k}={environ[k]}" for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if environ.get(k)]
    if bundles and tls:
        found.append(
            Finding(
                "environment",
                "warn",
                "a CA bundle variable would replace DOCKER_CERT_PATH/ca.pem in requests-based clients "
                "(docker-py #2433); infranode ignores it",
                tuple(bundles),
                "other docker-py tools fail here with `certificate verify failed`: unset these variables "
                "for them",
            )
        )
    proxies = [
        f"{k}={environ[k]}"
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")
        if environ.get(k)
    ]
    no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
    if proxies and scheme == "tcp" and not _no_proxy_covers(host, no_proxy):
        found.append(
            Finding(
                "environment",
                "warn",
                f"a proxy is set and NO_PROXY does not cover the daemon {host!r}; infranode ignores proxies "
                "for the daemon",
                (*proxies, f"NO_PROXY={no_proxy}"),
                f"add {host} to NO_PROXY so that other docker-py tools reach the daemon",
            )
        )
    if environ.get("DOCKER_TLS") and not environ.get("DOCKER_TLS_VERIFY") and scheme == "tcp":
        found.append(
            Finding(
                "environment",
                "warn",
                "DOCKER_TLS is set but docker-py (and infranode) ignore it",
                (f"DOCKER_TLS={environ['DOCKER_TLS']}",),
                "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH instead",
            )
        )
    return found


def verdict_bind_mount(outcome: Literal["seen", "empty", "refused"], detail: str, ci: str) -> Finding:
    """Whether the daemon sees this machine's files (a marker file bind-mounted into a container)."""
    if outcome == "seen":
        return Finding("files", "ok", "the daemon sees this machine's files (a marker bind mount worked)")
    what = (
        "the daemon cannot see this machine's files: the marker file's path does not exist on its side"
        if outcome == "refused"
        else "the daemon mounted an empty directory instead of this machine's marker file"
    )
    return Finding(
        "files",
        "info",
        what + " (a remote daemon, docker-in-docker or a mounted socket)",
        (detail,) if detail else (),
        _fix(
            "nothing to do: infranode copies files through the Docker API, never bind mounts",
            ci,
            "files-not-visible",
        ),
    )


# --------------------------------------------------------------------------------------------
# probes (I/O, small and bounded)


def _dn(parts: Any) -> str:
    pairs = [f"{k}={v}" for rdn in parts for (k, v) in rdn]
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    return ", ".join(
        f"{short.get(p.split('=', 1)[0], p.split('=', 1)[0])}={p.split('=', 1)[1]}" for p in pairs
    )


def cert_info_from_dict(decoded: Mapping[str, Any]) -> CertInfo:
    """A :class:`CertInfo` from ``ssl``'s decoded-certificate dict (pure)."""
    sans = tuple(
        f"{'IP' if kind == 'IP Address' else kind}:{str(value).strip()}"
        for kind, value in decoded.get("subjectAltName", ())
    )
    not_after = str(decoded.get("notAfter", ""))
    try:
        expires = float(ssl.cert_time_to_seconds(not_after)) if not_after else 0.0
    except ValueError:
        expires = 0.0
    return CertInfo(_dn(decoded.get("subject", ())), _dn(decoded.get("issuer", ())), sans, not_after, expires)


def read_cert(path: str) -> CertInfo:
    """Read the first certificate of a PEM file with the standard library.

    :raises ValueError: the file is not a readable PEM certificate.
    """
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:  # pragma: no cover - present in CPython 3.10 .. 3.13
        raise ValueError("this Python cannot decode certificates")
    try:
        return cert_info_from_dict(decode(path))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _cert_from_der(der: bytes) -> CertInfo | None:
    with tempfile.NamedTemporaryFile("w", suffix=".pem", prefix="infranode-cert-") as tmp:
        tmp.write(ssl.DER_cert_to_PEM_cert(der))
        tmp.flush()
        try:
            return read_cert(tmp.name)
        except ValueError:
            return None


def read_tls_files(tls: TLSFiles) -> TLSFacts:
    missing = tuple(
        name
        for name, path in (("ca.pem", tls.ca), ("cert.pem", tls.cert), ("key.pem", tls.key))
        if not os.path.isfile(path)
    )
    if missing:
        return TLSFacts(tls.origin, tls.cert_dir, missing=missing)
    certs: dict[str, CertInfo | None] = {}
    unreadable: list[str] = []
    for name, path in (("ca", tls.ca), ("cert", tls.cert)):
        try:
            certs[name] = read_cert(path)
        except ValueError as exc:
            certs[name] = None
            unreadable.append(str(exc))
    if not os.access(tls.key, os.R_OK):
        unreadable.append(f"{tls.key}: not readable by this user")
    return TLSFacts(
        tls.origin, tls.cert_dir, ca=certs["ca"], cert=certs["cert"], unreadable=tuple(unreadable)
    )


def probe_socket(path: str) -> SocketFacts:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return SocketFacts(path, exists=False)
    except PermissionError as exc:  # a parent directory we may not enter
        return SocketFacts(path, exists=True, is_socket=True, connect_errno=exc.errno)
    user = _name(pwd.getpwuid, os.geteuid(), "pw_name")
    gids = tuple(sorted(set(os.getgroups()) | {os.getegid()}))
    group = _name(grp.getgrgid, st.st_gid, "gr_name")
    try:
        listed = user in grp.getgrgid(st.st_gid).gr_mem
    except KeyError:
        listed = False
    facts = SocketFacts(
        path,
        exists=True,
        is_socket=stat.S_ISSOCK(st.st_mode),
        mode=stat.filemode(st.st_mode),
        owner=_name(pwd.getpwuid, st.st_uid, "pw_name"),
        group=group,
        gid=st.st_gid,
        user=user,
        user_groups=tuple(_name(grp.getgrgid, g, "gr_name") for g in gids),
        process_gids=gids,
        listed_in_group=listed,
    )
    if not facts.is_socket:
        return facts
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
        except OSError as exc:
            return _replace_errno(facts, exc.errno or errno.EIO)
    return facts


def _replace_errno(facts: SocketFacts, code: int) -> SocketFacts:
    values = {f: getattr(facts, f) for f in SocketFacts.__dataclass_fields__}
    values["connect_errno"] = code
    return SocketFacts(**values)


def _name(lookup: Any, ident: int, attr: str) -> str:
    try:
        return str(getattr(lookup(ident), attr))
    except KeyError:
        return str(ident)


def probe_port(host: str, port: int, timeout: float = 3.0) -> PortFacts:
    """Resolve, connect, and find out whether the port speaks plain HTTP or TLS."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return PortFacts(host, port, resolve_error=f"[Errno {exc.errno}] {exc.strerror}")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET /_ping HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            reply = sock.recv(4096).decode("latin-1", "replace")
    except OSError as exc:
        return PortFacts(
            host,
            port,
            connect_error=str(exc) or type(exc).__name__,
            refused=isinstance(exc, ConnectionRefusedError),
        )
    if "HTTPS server" in reply:
        speaks: Literal["tls", "http", "unknown"] = "tls"
    elif reply.startswith("HTTP/"):
        return PortFacts(host, port, speaks="http")
    else:
        speaks = "unknown"
    server = None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=None if _is_ip(host) else host) as tls_sock,
        ):
            der = tls_sock.getpeercert(binary_form=True)
            speaks = "tls"
            server = _cert_from_der(der) if der else None
    except (OSError, ssl.SSLError):
        pass
    return PortFacts(host, port, speaks=speaks, server_cert=server)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def error_chain(exc: BaseException) -> str:
    """The exception's type and its root cause, on one line (the full text of the root)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8 and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    root = chain[-1]
    text = f"{type(root).__name__}: {root}"
    return text if root is exc else f"{type(exc).__name__} caused by {text}"


# --------------------------------------------------------------------------------------------
# the whole run


DOCTOR_IMAGE = "debian:12"
DOCTOR_LABEL = "infranode.doctor"


def render_text(report: Report) -> str:
    """One screen: a line per check, then evidence and fix under each problem."""
    marks = {"ok": "OK  ", "info": "INFO", "warn": "WARN", "fail": "FAIL"}
    lines = [
        f"infranode doctor: {report.endpoint} [{report.source}]"
        + (f" on {CI_TITLES[report.ci]}" if report.ci else "")
    ]
    for f in report.findings:
        lines.append(f"{marks[f.status]}  {f.check:<11} {f.summary}")
        if f.status != "ok":
            lines.extend(f"             evidence: {e}" for e in f.evidence)
            if f.fix:
                fix = f.fix.replace("\n         ", "\n" + " " * 23)
                lines.append(f"             fix:      {fix}")
    verdict = "ready" if report.ok else "NOT ready"
    lines.append(f"verdict: {verdict} ({report.seconds:.1f} s)")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def run_doctor(
    explicit: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    wait: float | None = None,
    images: Sequence[str] = (),
) -> Report:
    """Connect and check everything a session needs; never raises for a daemon problem."""
    from pytest_infranode.engine import daemon

    env = os.environ if environ is None else environ
    started = time.monotonic()
    ci = detect_ci(env)
    try:
        endpoint = daemon.resolve_endpoint(explicit, env)
    except DaemonError as err:
        unresolved = explicit or env.get("DOCKER_HOST") or f"context {env.get('DOCKER_CONTEXT', '?')}"
        report = Report(unresolved, "not resolved", ci)
        report.findings.append(
            Finding("endpoint", "fail", err.what, (err.where,) if err.where else (), err.fix)
        )
        report.seconds = time.monotonic() - started
        return report
    report = Report(endpoint.url, endpoint.source, ci)
    report.findings.append(Finding("endpoint", "ok", f"{endpoint.url} (from {endpoint.source})"))
    report.findings.extend(
        environment_findings(env, endpoint.scheme, endpoint.host, endpoint.tls is not None)
    )
    try:
        client, info = daemon.connect(explicit, environ=env, wait=wait)
    except DaemonError as err:
        report.findings.append(_finding_from_error(err))
        report.seconds = time.monotonic() - started
        return report
    try:
        report.findings.extend(engine_findings(client, info, images=images, ci=ci))
    finally:
        client.close()
    report.seconds = time.monotonic() - started
    return report


def verdict_engine(info: DaemonInfo) -> list[Finding]:
    """The engine, its API version, cgroup set-up, rootless/Podman (pure)."""
    kind = "Podman" if info.podman else "Docker"
    found = [
        Finding(
            "engine",
            "ok",
            f"{kind} {info.server_version} (API {info.api_version}, OCI runtime {info.runtime}) on {info.os}",
        ),
        Finding(
            "cgroup",
            "ok",
            f"cgroup v{info.cgroup_version}, driver {info.cgroup_driver}; security options: "
            + (", ".join(info.security) or "none reported"),
        ),
        Finding("systemd", "info", "systemd nodes get " + systemd_recipe(info)),
    ]
    if "selinux" in info.security:
        found.append(
            Finding(
                "systemd",
                "info",
                "SELinux is enforced by the daemon: systemd nodes need `setsebool -P "
                "container_manage_cgroup on` on the host (not proven by this project)",
            )
        )
    if "userns" in info.security:
        found.append(
            Finding(
                "systemd",
                "info",
                "userns-remap: a node's root is an unprivileged user on the host; systemd nodes "
                "are not proven there by this project",
            )
        )
    if info.rootless:
        found.append(Finding("engine", "info", "rootless daemon: nodes cannot change kernel settings"))
    if info.podman:
        found.append(
            Finding(
                "engine",
                "info",
                "Podman: images load as localhost/NAME and failed pulls show up as 'no such image'",
            )
        )
    return found


def systemd_recipe(info: DaemonInfo) -> str:
    """What a systemd node gets on this daemon, in words (pure; engine/containers.py decides)."""
    mode = containers.systemd_cgroup_mode(info)
    if mode == "podman-native":
        return "Podman's own systemd set-up (it mounts /run, /tmp and a writable cgroup tree), CAP_SYS_ADMIN"
    cgroup = (
        "a private cgroup namespace whose cgroup2 mount PID 1 remounts read-write (the node's own subtree)"
        if mode == "private-rw"
        else "the host's cgroup namespace with /sys/fs/cgroup bound read-write"
    )
    security = containers.systemd_security_opt(info)
    confined = (
        "AppArmor unconfined (docker-default denies the mounts systemd needs)"
        if security
        else "no AppArmor profile to relax"
    )
    return f"{cgroup}, CAP_SYS_ADMIN, {confined}; seccomp stays the daemon's default"


def verdict_images(present: Sequence[str], wanted: Sequence[str]) -> Finding:
    """One line for the platform images: all there, or which ones a session would pull (pure)."""
    missing = [i for i in wanted if i not in present]
    if not missing:
        return Finding("images", "ok", f"all {len(wanted)} platform image(s) are on the daemon")
    return Finding(
        "images",
        "warn" if len(missing) == len(wanted) else "info",
        f"{len(present)} of {len(wanted)} platform images are on the daemon; the others are pulled at "
        "first use",
        (f"on the daemon: {', '.join(present) or 'none'}", f"missing: {', '.join(missing)}"),
        "without a registry, make them first (scripts/make-base-images.sh, or `docker load`)",
    )


def engine_findings(client: Any, info: DaemonInfo, *, images: Sequence[str], ci: str) -> list[Finding]:
    """Checks on a daemon that answers: a container starts, the daemon sees our files, images."""
    found = verdict_engine(info)
    have_image = _has_image(client, DOCTOR_IMAGE)
    if not have_image:
        found.append(
            Finding(
                "container",
                "warn",
                f"{DOCTOR_IMAGE} is not on the daemon: the container checks were skipped",
                fix=f"load it: `docker pull {DOCTOR_IMAGE}`, or `docker save | docker load` from a "
                "daemon that has it",
            )
        )
    else:
        found.append(_container_check(client))
        found.append(_systemd_check(client, info))
        found.append(_bind_mount_check(client, ci))
    if images:
        found.append(verdict_images([i for i in images if _has_image(client, i)], images))
    return found


def _has_image(client: Any, reference: str) -> bool:
    import docker.errors

    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def _run_throwaway(client: Any, command: list[str], mounts: list[Any] | None = None) -> tuple[int, str]:
    """Run a labelled container to its end; its exit status and output. Always removed."""
    container = client.containers.create(
        DOCTOR_IMAGE,
        command,
        labels={DOCTOR_LABEL: f"{os.uname().nodename}:{os.getpid()}"},
        mounts=mounts or [],
        network_mode="none",
    )
    try:
        container.start()
        status = container.wait(timeout=60)
        output = bytes(container.logs()).decode("utf-8", "replace").strip()
        return int(status.get("StatusCode", -1)), output
    finally:
        container.remove(force=True, v=True)


def _container_check(client: Any) -> Finding:
    import docker.errors

    started = time.monotonic()
    try:
        code, output = _run_throwaway(client, ["true"])
    except docker.errors.APIError as exc:
        return Finding(
            "container",
            "fail",
            "a throwaway container does not start" + _container_cause(str(exc)),
            (doctor_error_text(exc),),
            _container_fix(str(exc)),
            kind="other",
        )
    if code != 0:
        return Finding(
            "container", "fail", f"a throwaway container exited with {code}", (output,), kind="other"
        )
    return Finding(
        "container", "ok", f"a throwaway {DOCTOR_IMAGE} container ran ({time.monotonic() - started:.1f} s)"
    )


# Run in a throwaway container with a systemd node's flags (its PID 1 wrapper included), instead
# of systemd: may the node make its cgroups, and may systemd sandbox units there?
SYSTEMD_PROBE = (
    sandbox.PROBE
    + 'd=/sys/fs/cgroup; [ -d "$d/systemd" ] && d="$d/systemd"\n'
    + 'if mkdir "$d/infranode-doctor-$$" 2>/dev/null; then rmdir "$d/infranode-doctor-$$"; echo cgroup=rw; '
    + "else echo cgroup=ro; fi\n"
    + 'echo "sandbox=$(sandbox)"\n'
)


def _systemd_check(client: Any, info: DaemonInfo) -> Finding:
    """A container made as a systemd node is (engine/containers.py), running the probe above."""
    import docker.errors

    from pytest_infranode.engine.api import ContainerSpec

    if info.podman:
        return Finding(
            "systemd",
            "info",
            "Podman sets up a systemd node's cgroups itself when its command is an init: not probed",
        )
    spec = ContainerSpec(
        name=f"infranode-doctor-{os.getpid()}-{time.time_ns()}",
        image=DOCTOR_IMAGE,
        hostname="infranode-doctor",
        labels={DOCTOR_LABEL: f"{os.uname().nodename}:{os.getpid()}"},
        command=("/bin/sh", "-c", SYSTEMD_PROBE),
        init="systemd",
        tmpfs={"/run": "rw,nosuid,nodev,exec,mode=755", "/run/lock": "", "/tmp": ""},
        cap_add=("SYS_ADMIN",),
    )
    kwargs = containers.create_kwargs(spec, info)
    kwargs.update(tty=False, network_mode="none")
    kwargs.pop("stop_signal", None)
    try:
        container = client.containers.create(**kwargs)
    except docker.errors.APIError as exc:
        return Finding(
            "systemd", "fail", "a container with a systemd node's flags is refused", (doctor_error_text(exc),)
        )
    try:
        container.start()
        container.wait(timeout=60)
        output = bytes(container.logs()).decode("utf-8", "replace")
    except docker.errors.APIError as exc:
        return Finding(
            "systemd",
            "fail",
            "a container with a systemd node's flags does not start",
            (doctor_error_text(exc),),
        )
    finally:
        container.remove(force=True, v=True)
    return verdict_systemd(output, systemd_recipe(info))


def verdict_systemd(output: str, recipe: str) -> Finding:
    """The probe's ``cgroup=`` and ``sandbox=`` lines, as one finding (pure)."""
    said = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    verdict = sandbox.parse(said.get("sandbox", ""))
    evidence = tuple(line for line in output.splitlines() if line.strip())
    if said.get("cgroup") != "rw":
        return Finding(
            "systemd",
            "fail",
            "systemd nodes will not boot: their cgroup tree is read-only",
            evidence,
            "the daemon refused what systemd nodes get here (" + recipe + "); "
            "`infranode doctor --json` shows the security options; with AppArmor or SELinux "
            "see docs/systemd-nodes.md",
        )
    warned = sandbox.warning(verdict, "systemd nodes")
    if warned is not None:
        what, _, fix = warned.partition(" Fix: ")
        return Finding("systemd", "warn", what, evidence, fix)
    if verdict == "unknown":
        return Finding("systemd", "info", "systemd nodes boot; unit sandboxing could not be asked", evidence)
    return Finding(
        "systemd", "ok", "systemd nodes boot and can sandbox units (cgroups writable, mount namespaces)"
    )


def doctor_error_text(exc: BaseException) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def _oci_runtime_named(text: str) -> str:
    """Which OCI runtime speaks in a daemon's error: each prefixes its own messages (pure)."""
    for runtime in ("crun", "runc"):
        if f"{runtime}:" in text or f"{runtime} create failed" in text:
            return runtime
    return "the OCI runtime"


def _container_cause(text: str) -> str:
    """A short cause after "does not start", for the failures the doctor knows (pure).

    runc: "error setting rlimit type 7: operation not permitted"; crun: "setrlimit
    `RLIMIT_NOFILE`: Operation not permitted"; crun on a hybrid host: "cgroups in hybrid mode
    not supported, drop all controllers from cgroupv2".
    """
    if "hybrid mode not supported" in text:
        return ": crun refuses this hybrid cgroup host (its cgroup v2 hierarchy holds controllers)"
    if "rlimit" in text.lower():
        return f": {_oci_runtime_named(text)} may not raise the rlimits Podman asks for (no CAP_SYS_RESOURCE)"
    return ""


def _container_fix(text: str) -> str:
    if "hybrid mode not supported" in text:
        return (
            'run Podman with runc here (runtime = "runc" under [engine] in containers.conf, or '
            "podman --runtime runc), or boot the host on cgroup v2 alone "
            "(kernel argument systemd.unified_cgroup_hierarchy=1)"
        )
    if "rlimit" in text.lower():
        return (
            "Podman cannot raise rlimits here (no CAP_SYS_RESOURCE): set default_ulimits in containers.conf "
            'to at most the hard limits (ulimit -Hn, -Hu), e.g. default_ulimits = ["nofile=N:N"]'
        )
    if "could not find bridge docker0" in text:
        return "the host's docker0 bridge is gone: restart dockerd"
    if "apply caps" in text:
        return "the daemon lacks a capability: do not run it with --privileged / --cap-add ALL"
    if "authorization denied" in text:
        return (
            "an authorization plugin refused the request (Bitbucket Pipelines: no --mount, no --privileged)"
        )
    return "see the daemon's log for this error"


def _bind_mount_check(client: Any, ci: str) -> Finding:
    import docker.errors
    import docker.types

    token = f"infranode-{os.getpid()}-{time.time_ns()}"
    with tempfile.TemporaryDirectory(prefix="infranode-doctor-") as tmp:
        marker = os.path.join(tmp, "marker")
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(token)
        os.chmod(tmp, 0o755)
        os.chmod(marker, 0o644)
        mount = docker.types.Mount("/infranode-marker", tmp, type="bind", read_only=True)
        try:
            _code, output = _run_throwaway(
                client, ["sh", "-c", "cat /infranode-marker/marker || true"], [mount]
            )
        except docker.errors.APIError as exc:
            text = doctor_error_text(exc)
            if "bind source path does not exist" in text or "not allowed" in text or "denied" in text:
                return verdict_bind_mount("refused", text, ci)
            return Finding("files", "warn", "the marker bind mount check failed", (text,), kind="other")
    return verdict_bind_mount("seen" if token in output else "empty", f"container saw {output[:80]!r}", ci)


def _finding_from_error(err: DaemonError) -> Finding:
    evidence = tuple(
        line.strip().removeprefix("evidence:").strip() for line in err.detail.splitlines() if line.strip()
    )
    if err.where:
        evidence = (f"where: {err.where}", *evidence)
    return Finding("connect", "fail", err.what, evidence, err.fix)


# --------------------------------------------------------------------------------------------
# ssh:// daemons (docker-py's default transport is paramiko, which reads $HOME/.ssh)


@dataclass(frozen=True)
class SshFacts:
    """What was found about an ``ssh://user@host:port`` daemon address."""

    user: str
    host: str
    port: int
    paramiko: bool
    known_hosts: str
    host_known: bool | None  # None: known_hosts does not exist
    argv: tuple[str, ...] = ()  # the ssh client command run (empty: no ssh client on PATH)
    returncode: int | None = None
    stderr: str = ""
    transport_error: str = ""  # what paramiko/docker-py said


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def ssh_argv(user: str, host: str, port: int, home: str) -> list[str]:
    """The ssh command that does what docker-py's paramiko transport does: the key files, config
    and known_hosts of ``$HOME/.ssh`` (OpenSSH itself ignores $HOME), batch mode, strict host
    keys; then ``docker version`` on the remote. Pure."""
    dot = os.path.join(home, ".ssh")
    argv = [
        "ssh",
        "-F",
        os.path.join(dot, "config") if os.path.isfile(os.path.join(dot, "config")) else "/dev/null",
    ]
    argv += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=yes"]
    argv += ["-o", f"UserKnownHostsFile={os.path.join(dot, 'known_hosts')}"]
    for key in ("id_ed25519", "id_ecdsa", "id_rsa"):
        if os.path.isfile(os.path.join(dot, key)):
            argv += ["-i", os.path.join(dot, key)]
    argv += [
        "-p",
        str(port),
        f"{user}@{host}" if user else host,
        "docker",
        "version",
        "--format",
        "{{.Server.Version}}",
    ]
    return argv


def probe_ssh(
    url: str, environ: Mapping[str, str], transport_error: str = "", timeout: float = 20
) -> SshFacts:
    """paramiko importable? the host in known_hosts? and the real stderr of ``ssh … docker version``."""
    import importlib.util
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    user, host, port = parts.username or "", parts.hostname or "", parts.port or 22
    home = environ.get("HOME") or os.path.expanduser("~")
    known_hosts = os.path.join(home, ".ssh", "known_hosts")
    host_known: bool | None = None
    if os.path.isfile(known_hosts):
        keygen = shutil.which("ssh-keygen")
        name = _known_hosts_name(host, port)
        if keygen:
            found = subprocess.run(
                [keygen, "-F", name, "-f", known_hosts],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            host_known = found.returncode == 0 and bool(found.stdout.strip())
        else:
            with open(known_hosts, encoding="utf-8", errors="replace") as fh:
                host_known = any(name in line.split()[0].split(",") for line in fh if line.strip())
    argv: tuple[str, ...] = ()
    rc: int | None = None
    stderr = ""
    if shutil.which("ssh"):
        argv = tuple(ssh_argv(user, host, port, home))
        try:
            done = subprocess.run(
                list(argv),
                env=dict(environ),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            rc, stderr = done.returncode, done.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, stderr = 255, f"ssh did not finish within {timeout:.0f} s"
    return SshFacts(
        user=user,
        host=host,
        port=port,
        paramiko=importlib.util.find_spec("paramiko") is not None,
        known_hosts=known_hosts,
        host_known=host_known,
        argv=argv,
        returncode=rc,
        stderr=stderr,
        transport_error=transport_error,
    )


def verdict_ssh(facts: SshFacts, ci: str = "") -> Finding:
    """Why an ssh:// daemon cannot be used, from the facts (pure)."""
    target = f"{facts.user}@{facts.host}:{facts.port}" if facts.user else f"{facts.host}:{facts.port}"
    evidence: list[str] = []
    if facts.transport_error:
        evidence.append(f"docker-py (paramiko) said: {facts.transport_error}")
    if facts.argv:
        evidence.append("ran: " + shlex.join(facts.argv))
        evidence.append(
            f"ssh exit status {facts.returncode}"
            + (f", stderr: {' | '.join(facts.stderr.splitlines())}" if facts.stderr else "")
        )
    err = facts.stderr.lower()
    if not facts.paramiko:
        return Finding(
            "connect",
            "fail",
            "ssh:// needs paramiko (docker-py's ssh transport), which is not installed",
            tuple(evidence),
            "pip install 'pytest-infranode[ssh]' (or: pip install paramiko)",
        )
    if "could not resolve hostname" in err or "name or service not known" in err:
        return Finding(
            "connect",
            "fail",
            f"the ssh host {facts.host!r} does not resolve",
            tuple(evidence),
            "check the host name in DOCKER_HOST (ssh://user@host[:port])",
        )
    if "connection refused" in err or "unable to connect to port" in facts.transport_error.lower():
        return Finding(
            "connect",
            "fail",
            f"nothing listens for ssh on {facts.host}:{facts.port} (no sshd, or the wrong port)",
            tuple(evidence),
            f"start sshd on {facts.host}, or give the right port: "
            f"ssh://{facts.user or 'user'}@{facts.host}:PORT",
        )
    if (
        facts.host_known is not True
        or "host key verification failed" in err
        or "not found in known_hosts" in facts.transport_error
    ):
        port = "" if facts.port == 22 else f" -p {facts.port}"
        name = _known_hosts_name(facts.host, facts.port)
        scan = f"ssh-keyscan{port} {facts.host} >> {facts.known_hosts}"
        if "remote host identification has changed" in err or "does not match" in facts.transport_error:
            offending = re.search(r"Offending \S+ key in (\S+):(\d+)", facts.stderr)
            stored = f"{offending[1]}:{offending[2]}" if offending else facts.known_hosts
            return Finding(
                "connect",
                "fail",
                f"the host key of {facts.host}:{facts.port} changed since it was stored in {stored}",
                tuple(evidence),
                "if the host was rebuilt or re-keyed on purpose, drop the stale entry and store the "
                f"new key (check its fingerprint first): ssh-keygen -f {shlex.quote(facts.known_hosts)} "
                f"-R {shlex.quote(name)} && {scan}; if not, stop: someone may be between you and "
                f"{facts.host}",
            )
        return Finding(
            "connect",
            "fail",
            f"the host key of {name} is not in {facts.known_hosts}",
            tuple(evidence),
            f"docker-py refuses unknown host keys: add it (check its fingerprint first): {scan}",
        )
    if "permission denied (publickey" in err or "authentication failed" in facts.transport_error.lower():
        return Finding(
            "connect",
            "fail",
            f"the ssh server refused the key for {target}",
            tuple(evidence),
            f"put your public key in ~{facts.user}/.ssh/authorized_keys on {facts.host}, or the key in "
            "$HOME/.ssh (id_ed25519/id_rsa) or an IdentityFile line of $HOME/.ssh/config",
        )
    if "docker: command not found" in err or "docker: not found" in err:
        return Finding(
            "connect",
            "fail",
            f"{facts.host} has no docker CLI on the PATH of {target}",
            tuple(evidence),
            "docker over ssh runs `docker system dial-stdio` on the remote: install the docker CLI there",
        )
    if "permission denied while trying to connect to the docker daemon socket" in err:
        return Finding(
            "connect",
            "fail",
            f"{facts.user or 'the remote user'} on {facts.host} may not use the Docker socket",
            tuple(evidence),
            f"on {facts.host}: sudo usermod -aG docker {facts.user or 'USER'} (then log in again)",
            kind="permission",
        )
    if facts.returncode == 0:
        return Finding(
            "connect",
            "fail",
            f"ssh to {target} runs docker, but docker-py's ssh transport failed",
            tuple(evidence),
            "read paramiko's message above; `pip install -U paramiko docker` may help",
        )
    return Finding(
        "connect",
        "fail",
        f"the Docker daemon at ssh://{target} cannot be reached over ssh",
        tuple(evidence),
        "run the `ran:` command above yourself to see why",
    )
