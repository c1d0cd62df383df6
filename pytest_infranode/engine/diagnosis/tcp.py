"""The verdicts on a tcp:// daemon, TLS included (pure): the host, the port and its sibling, plain
HTTP against TLS, the client's TLS files, and the certificates on both sides."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from pytest_infranode.engine.diagnosis.ci import with_ci_hint
from pytest_infranode.engine.diagnosis.facts import PortFacts
from pytest_infranode.engine.diagnosis.facts import TLSFacts
from pytest_infranode.engine.diagnosis.findings import Finding


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
            with_ci_hint(generic, ci, "tls-files"),
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
            with_ci_hint(f"correct the host in {endpoint}, or start the service that provides it", ci, "dns"),
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
                with_ci_hint(generic, ci, "refused" if sibling.speaks == "http" else "plain-to-tls"),
            )
        what = "nothing listens on" if facts.refused else "no answer from"
        return Finding(
            "connect",
            "fail",
            f"{what} {host}:{port} (is the daemon running? still starting?)",
            (f"connect {host}:{port}: {facts.connect_error}", *evidence),
            with_ci_hint(
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
            with_ci_hint(
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
        with_ci_hint("is this port a Docker daemon? check DOCKER_HOST", ci, "refused"),
        kind="other",
    )
