"""Finding the Docker daemon and connecting to it, with a diagnosis when that fails.

The endpoint is resolved the way the docker CLI does it, and we remember where it came from:
``--infra-docker-host`` (ini, infranode.yaml), ``DOCKER_HOST``, ``DOCKER_CONTEXT``, the
``currentContext`` of ``config.json``, the default socket, then the rootless and Podman
sockets. Contexts are read here (docker-py < 7.2 ignores them, 7.2 falls back silently when one
is missing; the CLI and we fail instead). The client is built from the resolved URL and TLS
files ourselves, so docker-py's own environment handling never second-guesses it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import docker.tls
import requests.exceptions

from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.diagnosis.address import host_syntax_problem
from pytest_infranode.engine.diagnosis.ci import detect_ci
from pytest_infranode.engine.diagnosis.findings import error_chain
from pytest_infranode.engine.diagnosis.probes import probe_port
from pytest_infranode.engine.diagnosis.probes import probe_socket
from pytest_infranode.engine.diagnosis.probes import probe_ssh
from pytest_infranode.engine.diagnosis.probes import read_tls_files
from pytest_infranode.engine.diagnosis.ssh import verdict_ssh
from pytest_infranode.engine.diagnosis.tcp import sibling_port
from pytest_infranode.engine.diagnosis.tcp import verdict_tcp
from pytest_infranode.engine.diagnosis.tcp import verdict_tls_files
from pytest_infranode.engine.diagnosis.unix import verdict_socket
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import DaemonUnreachable

# Pinned instead of "auto": with "auto" docker-py contacts the daemon while being constructed
# and wraps every failure in one generic message. 1.41 is Docker 20.10; newer daemons accept it.
API_VERSION = "1.41"
DEFAULT_SOCKET = "/var/run/docker.sock"
WAIT_ENV = "INFRANODE_DOCKER_WAIT"
LONGEST_WAIT = 3600.0
"""The longest wait for a starting daemon that INFRANODE_DOCKER_WAIT may ask for (an hour)."""
LONGEST_ADDRESS = 2048
"""The longest daemon address taken (longer is a mistake, such as a pasted file)."""
# How long a daemon that may be starting is waited for: a local socket comes up in well under a
# second; docker:dind makes its certificates first (several seconds).
DEFAULT_WAIT = {"unix": 10.0, "tcp": 30.0, "ssh": 10.0}


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """The client side of a TLS daemon: CA, certificate and key, and where they came from."""

    cert_dir: str
    origin: str
    verify: bool = True

    @property
    def ca(self) -> str:
        return os.path.join(self.cert_dir, "ca.pem")

    @property
    def cert(self) -> str:
        return os.path.join(self.cert_dir, "cert.pem")

    @property
    def key(self) -> str:
        return os.path.join(self.cert_dir, "key.pem")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A daemon address and where it came from (an option, DOCKER_HOST, a context, a default)."""

    url: str
    source: str
    tls: TLSFiles | None = None
    context: str = ""

    @property
    def scheme(self) -> str:
        scheme = self.url.partition("://")[0].lower()
        return "tcp" if scheme in ("http", "https") else scheme

    @property
    def host(self) -> str:
        if self.scheme == "unix":
            return ""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (22 if self.scheme == "ssh" else 2375)

    @property
    def socket_path(self) -> str:
        path = self.url[len("unix://") :] if self.scheme == "unix" else ""
        return path or DEFAULT_SOCKET

    def describe(self) -> str:
        return f"{self.url} (from {self.source})"


def _check_syntax(value: str, source: str) -> str:
    value = value.strip()
    if value in ("unix://", ""):
        return f"unix://{DEFAULT_SOCKET}"
    if len(value) > LONGEST_ADDRESS:
        raise DaemonUnreachable(
            f"{source} is {len(value)} characters long ({value[:60]!r}...), no daemon address",
            where=source,
            fix="write it as unix:///path/to/docker.sock, tcp://host:2376 or ssh://user@host",
        )
    problem = host_syntax_problem(value)
    if problem is not None:
        what, fix = problem
        raise DaemonUnreachable(f"{source}={value!r} cannot be used: {what}", where=source, fix=fix)
    return value


def _env_tls(environ: Mapping[str, str], home: str) -> TLSFiles | None:
    # Like the docker CLI and docker-py: any non-empty DOCKER_TLS_VERIFY (even "0") means verify.
    if not environ.get("DOCKER_TLS_VERIFY"):
        return None
    cert_dir = environ.get("DOCKER_CERT_PATH") or os.path.join(home, ".docker")
    origin = "DOCKER_TLS_VERIFY=" + environ["DOCKER_TLS_VERIFY"]
    origin += (
        f", DOCKER_CERT_PATH={cert_dir}"
        if environ.get("DOCKER_CERT_PATH")
        else f", certificates in {cert_dir}"
    )
    return TLSFiles(cert_dir, origin)


def config_dir(environ: Mapping[str, str], home: str) -> str:
    return environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")


def context_id(name: str) -> str:
    """The directory name of a context in the CLI's store: the sha256 of its name."""
    return hashlib.sha256(name.encode()).hexdigest()


# A context name as the docker CLI accepts one (`docker context create`).
_CONTEXT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.+-]*")


def _current_context(environ: Mapping[str, str], cfg: str) -> tuple[str, str]:
    if name := environ.get("DOCKER_CONTEXT"):
        if len(name) > LONGEST_ADDRESS or not _CONTEXT_NAME.fullmatch(name):
            shown = f"{name[:60]!r}... ({len(name)} characters)" if len(name) > 60 else repr(name)
            raise DaemonUnreachable(
                f"DOCKER_CONTEXT={shown} is not a docker context name",
                where="DOCKER_CONTEXT",
                fix="`docker context ls` lists the contexts; set DOCKER_CONTEXT to one of them, or unset it",
            )
        return name, "DOCKER_CONTEXT"
    path = os.path.join(cfg, "config.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return "default", ""
    except (OSError, ValueError) as exc:
        raise DaemonUnreachable(
            f"the docker configuration {path} cannot be read: {exc}",
            where=path,
            fix="repair or remove the file (it names the current docker context)",
        ) from exc
    name = data.get("currentContext") if isinstance(data, dict) else None
    return (str(name), f"currentContext in {path}") if name else ("default", "")


def _context_endpoint(name: str, why: str, cfg: str) -> Endpoint | None:
    meta_path = os.path.join(cfg, "contexts", "meta", context_id(name), "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise DaemonUnreachable(
            f"docker context {name!r} does not exist (named by {why})",
            where=meta_path,
            fix="`docker context ls` lists the contexts; create it, or unset DOCKER_CONTEXT / run "
            "`docker context use default`",
        ) from None
    except (OSError, ValueError) as exc:
        raise DaemonUnreachable(
            f"docker context {name!r} cannot be read: {exc}",
            where=meta_path,
            fix=f"recreate it: `docker context rm {name}` then `docker context create {name} ...`",
        ) from exc
    docker_ep = (meta.get("Endpoints") or {}).get("docker") or {}
    host = str(docker_ep.get("Host") or "")
    source = f"context {name!r} ({why})"
    if not host:
        return None
    url = _check_syntax(host, source)
    tls_dir = os.path.join(cfg, "contexts", "tls", context_id(name), "docker")
    tls = None
    if url.startswith("tcp://") and os.path.isdir(tls_dir):
        tls = TLSFiles(tls_dir, f"context {name!r}", verify=not docker_ep.get("SkipTLSVerify", False))
    return Endpoint(url, source, tls, context=name)


def _is_socket(path: str) -> bool:
    try:
        return (os.stat(path).st_mode & 0o170000) == 0o140000
    except OSError:
        return False


def fallback_sockets(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The sockets tried after the default one: rootless Docker, then Podman."""
    found = []
    runtime = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    found.append((os.path.join(runtime, "docker.sock"), "rootless Docker socket"))
    found.append((os.path.join(runtime, "podman", "podman.sock"), "rootless Podman socket"))
    found.append(("/run/podman/podman.sock", "Podman socket"))
    return found


def resolve_endpoint(
    explicit: str | None,
    environ: Mapping[str, str],
    *,
    home: str | None = None,
    is_socket: Callable[[str], bool] = _is_socket,
) -> Endpoint:
    """The daemon to use, like the docker CLI, and where it came from.

    :raises DaemonError: an unusable address, or a context that does not exist.
    """
    home = home if home is not None else os.path.expanduser("~")
    if explicit:
        url = _check_syntax(explicit, "--infra-docker-host")
        return Endpoint(
            url, "--infra-docker-host", _env_tls(environ, home) if url.startswith("tcp") else None
        )
    if environ.get("DOCKER_HOST", "").strip():
        url = _check_syntax(environ["DOCKER_HOST"], "DOCKER_HOST")
        tls = _env_tls(environ, home) if not url.startswith(("unix", "ssh")) else None
        return Endpoint(url, "DOCKER_HOST", tls)
    cfg = config_dir(environ, home)
    name, why = _current_context(environ, cfg)
    if name != "default":
        found = _context_endpoint(name, why, cfg)
        if found is not None:
            return found
    if is_socket(DEFAULT_SOCKET):
        return Endpoint(f"unix://{DEFAULT_SOCKET}", "default socket")
    for path, label in fallback_sockets(environ):
        if is_socket(path):
            return Endpoint(f"unix://{path}", label)
    return Endpoint(f"unix://{DEFAULT_SOCKET}", "default socket")


def _client(endpoint: Endpoint, timeout: float = 60) -> docker.DockerClient:
    kwargs: dict[str, Any] = {"base_url": endpoint.url}
    if endpoint.tls is not None:
        tls = endpoint.tls
        kwargs["tls"] = docker.tls.TLSConfig(
            client_cert=(tls.cert, tls.key), ca_cert=tls.ca if tls.verify else None, verify=tls.verify
        )
    try:
        client = docker.DockerClient(version=API_VERSION, timeout=timeout, **kwargs)
    except docker.errors.DockerException as exc:
        text = str(exc)
        fix = "write it as unix:///path/to/docker.sock, tcp://host:2376 or ssh://user@host"
        if "paramiko" in text:
            fix = "ssh:// needs paramiko: `pip install paramiko`"
        raise DaemonUnreachable(
            f"the daemon address {endpoint.url!r} is not usable: {text}", where=endpoint.describe(), fix=fix
        ) from exc
    # requests would otherwise let REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace the daemon's CA
    # (docker-py #2433) and send tcp:// daemons through HTTP(S)_PROXY.
    client.api.trust_env = False
    return client


_MAYBE_STARTING = (
    FileNotFoundError,
    ConnectionRefusedError,
    ConnectionResetError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ReadTimeout,
)


def _wait_seconds(endpoint: Endpoint, wait: float | None, environ: Mapping[str, str]) -> float:
    if wait is not None:
        return max(0.0, wait)
    raw = environ.get(WAIT_ENV, "").strip()
    if raw:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not 0 <= seconds <= LONGEST_WAIT:  # nan, inf, negative or a day: a mistake, said so
            raise DaemonError(
                f"{WAIT_ENV}={raw[:60]!r} is not a number of seconds from 0 to {LONGEST_WAIT:.0f}",
                where=WAIT_ENV,
                fix=f"e.g. {WAIT_ENV}=30, or unset it (10 s for a socket, 30 s for tcp://)",
            )
        return seconds
    return DEFAULT_WAIT.get(endpoint.scheme, 10.0)


def _unix_failure(endpoint: Endpoint, ci: str, started: float) -> DaemonError | None:
    facts = probe_socket(endpoint.socket_path)
    finding = verdict_socket(facts, endpoint.source, ci)
    if finding.status == "ok":
        return None
    return finding.to_error(f"{endpoint.describe()}, waited {time.monotonic() - started:.1f} s")


def _wait_for_unix(endpoint: Endpoint, deadline: float, started: float, ci: str) -> None:
    """Wait for a socket that may appear (daemon starting); explain one that never answers."""
    while True:
        problem = _unix_failure(endpoint, ci, started)
        if problem is None:
            return
        if problem.__class__.__name__ == "DaemonPermissionDenied" or time.monotonic() >= deadline:
            raise problem
        time.sleep(0.25)


def _wait_for_tcp(endpoint: Endpoint, deadline: float) -> float:
    """Wait for the port to accept; stop early when waiting cannot help (DNS, the other port).

    Returns the deadline left for the API itself (now, when waiting cannot help).
    """
    sibling_checked = False
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection(
                (endpoint.host, endpoint.port), timeout=max(0.5, min(3.0, remaining))
            ):
                return deadline
        except socket.gaierror:
            return time.monotonic()  # diagnosed by the caller; a name does not appear by waiting
        except ConnectionRefusedError:
            if not sibling_checked:
                sibling_checked = True
                other = sibling_port(endpoint.port)
                if other is not None and probe_port(endpoint.host, other, timeout=1.0).answers:
                    return time.monotonic()
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return deadline
        time.sleep(0.25)


def _tcp_failure(endpoint: Endpoint, exc: BaseException | None, ci: str, started: float) -> DaemonError:
    facts = probe_port(endpoint.host, endpoint.port)
    sibling = None
    other = sibling_port(endpoint.port)
    if not facts.answers and not facts.resolve_error and other is not None:
        sibling = probe_port(endpoint.host, other, timeout=1.0)
    tls = read_tls_files(endpoint.tls) if endpoint.tls is not None else None
    finding = verdict_tcp(
        endpoint.url,
        facts,
        tls,
        error_chain(exc) if exc is not None else "",
        ci,
        sibling=sibling,
        now=time.time(),
    )
    return finding.to_error(f"{endpoint.describe()}, waited {time.monotonic() - started:.1f} s")


def connect(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    wait: float | None = None,
) -> tuple[docker.DockerClient, DaemonInfo]:
    """Connect to the daemon, waiting a bounded time for one that is starting.

    ``wait`` defaults to ``INFRANODE_DOCKER_WAIT``, else 10 s for a socket and 30 s for tcp://.
    Only "maybe starting" failures are retried, never TLS, permission or address mistakes.

    :raises DaemonError: whose text is the doctor's diagnosis: cause, evidence, fix.
    """
    env = os.environ if environ is None else environ
    ci = detect_ci(env)
    endpoint = resolve_endpoint(explicit, env)
    started = time.monotonic()
    deadline = started + _wait_seconds(endpoint, wait, env)
    if endpoint.tls is not None:
        problem = verdict_tls_files(read_tls_files(endpoint.tls), ci, time.time())
        if problem is not None:
            raise problem.to_error(endpoint.describe())
    if endpoint.scheme == "ssh":
        return _connect_ssh(endpoint, env, ci, started)
    if endpoint.scheme == "unix":
        _wait_for_unix(endpoint, deadline, started, ci)
    elif endpoint.scheme == "tcp":
        deadline = _wait_for_tcp(endpoint, deadline)
    client = _client(endpoint)
    try:
        _ping(client, endpoint, deadline, started, ci)
        return client, _daemon_info(client, endpoint)
    except BaseException:
        client.close()
        raise


def _ssh_failure(
    endpoint: Endpoint, env: Mapping[str, str], ci: str, started: float, said: str
) -> DaemonError:
    facts = probe_ssh(endpoint.url, env, transport_error=said)
    return verdict_ssh(facts, ci).to_error(f"{endpoint.describe()}, {time.monotonic() - started:.1f} s")


def _connect_ssh(
    endpoint: Endpoint, env: Mapping[str, str], ci: str, started: float
) -> tuple[docker.DockerClient, DaemonInfo]:
    """ssh:// through docker-py's paramiko transport. Its failures are paramiko exceptions (no
    host key, refused key, no sshd): each is explained by :func:`verdict_ssh`, which
    runs the ssh client once for its real stderr. Nothing is retried: sshd is not "starting"."""
    try:
        client = _client(endpoint)
    except DaemonUnreachable as err:  # paramiko missing, or an address docker-py refuses
        raise _ssh_failure(endpoint, env, ci, started, err.what) from err
    except Exception as exc:  # docker-py's paramiko adapter connects at once
        raise _ssh_failure(endpoint, env, ci, started, f"{type(exc).__name__}: {exc}") from exc
    try:
        client.ping()
        return client, _daemon_info(client, endpoint)
    except Exception as exc:
        client.close()
        raise _ssh_failure(endpoint, env, ci, started, f"{type(exc).__name__}: {exc}") from exc


def _ping(client: docker.DockerClient, endpoint: Endpoint, deadline: float, started: float, ci: str) -> None:
    while True:
        try:
            client.ping()
            return
        except (requests.exceptions.SSLError, docker.errors.APIError) as exc:
            raise _failure(endpoint, exc, ci, started) from exc
        except _MAYBE_STARTING as exc:
            if time.monotonic() < deadline and not _hopeless(exc):
                time.sleep(0.25)
                continue
            raise _failure(endpoint, exc, ci, started) from exc
        except docker.errors.DockerException as exc:  # ssh transport problems and the like
            raise DaemonUnreachable(
                f"the daemon at {endpoint.url} cannot be reached: {exc}",
                where=endpoint.describe(),
                fix="check the address and credentials; `infranode doctor` shows the details",
            ) from exc


def _hopeless(exc: BaseException) -> bool:
    """Failures that waiting does not cure: an unknown host name."""
    text = error_chain(exc)
    return "NameResolutionError" in text or "gaierror" in text


def _failure(endpoint: Endpoint, exc: BaseException, ci: str, started: float) -> DaemonError:
    if endpoint.scheme == "unix":
        problem = _unix_failure(endpoint, ci, started)
        if problem is not None:
            return problem
    if endpoint.scheme == "tcp":
        return _tcp_failure(endpoint, exc, ci, started)
    return DaemonUnreachable(
        f"the Docker daemon at {endpoint.url} does not answer: {error_chain(exc)}",
        where=f"{endpoint.describe()}, waited {time.monotonic() - started:.1f} s",
        fix="start the daemon or correct DOCKER_HOST; `infranode doctor` explains more",
    )


def _daemon_info(client: docker.DockerClient, endpoint: Endpoint) -> DaemonInfo:
    version = client.version()
    info = client.info()
    components = [c.get("Name", "") for c in version.get("Components", []) or []]
    security = security_option_names(info.get("SecurityOptions"))
    return DaemonInfo(
        endpoint=endpoint.url,
        source=endpoint.source,
        server_version=str(version.get("Version", "?")),
        api_version=str(version.get("ApiVersion", "?")),
        cgroup_version=str(info.get("CgroupVersion", "1") or "1"),
        cgroup_driver=str(info.get("CgroupDriver", "?")),
        os=str(info.get("OperatingSystem", "?")),
        podman=any("podman" in c.lower() for c in components),
        rootless="rootless" in security,
        runtime=os.path.basename(str(info.get("DefaultRuntime") or "?")),
        security=security,
    )


def security_option_names(options: object) -> tuple[str, ...]:
    """``["name=apparmor", "name=seccomp,profile=default"]`` -> ``("apparmor", "seccomp")``; the
    old plain form (``["apparmor", "seccomp"]``) too. Pure."""
    names: list[str] = []
    for option in options if isinstance(options, list) else []:
        fields = dict(f.partition("=")[::2] for f in str(option).split(","))
        name = fields.get("name") or str(option).split(",")[0]
        if name and name not in names:
            names.append(name)
    return tuple(names)
