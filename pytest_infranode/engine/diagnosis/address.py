"""Verdicts on the address and its environment, before anything is dialled (pure): a DOCKER_HOST
that cannot be used as written, and proxy or CA-bundle variables that mislead other docker-py
tools."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_infranode.engine.diagnosis.findings import Finding


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
