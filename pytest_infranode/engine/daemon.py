"""Finding the Docker daemon and connecting to it, with a diagnosis when that fails."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions

from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import DaemonPermissionDenied
from pytest_infranode.errors import DaemonTLSError
from pytest_infranode.errors import DaemonUnreachable

# Pinned instead of "auto": with "auto" docker-py contacts the daemon while being constructed
# and wraps every failure in one generic message. 1.41 is Docker 20.10; newer daemons accept it.
API_VERSION = "1.41"
DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A daemon address and where it came from (an option, DOCKER_HOST, the default)."""

    url: str
    source: str


def resolve_endpoint(explicit: str | None, environ: Mapping[str, str]) -> Endpoint:
    """The daemon to use: an explicit setting, then DOCKER_HOST, then the default socket."""
    if explicit:
        return Endpoint(explicit, "--infra-docker-host")
    if environ.get("DOCKER_HOST"):
        return Endpoint(environ["DOCKER_HOST"], "DOCKER_HOST")
    return Endpoint(f"unix://{DEFAULT_SOCKET}", "default socket")


def _socket_problem(path: str) -> DaemonError | None:
    """Explain why a unix socket cannot be used, from the file system alone."""
    fix_start = "start the daemon (`sudo systemctl start docker`, or `dockerd &`), or set DOCKER_HOST"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return DaemonUnreachable(
            f"no Docker daemon: the socket {path} does not exist", where=path, fix=fix_start
        )
    except PermissionError:
        return DaemonPermissionDenied(
            f"permission denied reading {path}", where=path, fix="run as a user in the `docker` group"
        )
    if not stat.S_ISSOCK(st.st_mode):
        return DaemonUnreachable(
            f"{path} is not a socket", where=path, fix="point DOCKER_HOST at the daemon's socket"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        return DaemonPermissionDenied(
            f"permission denied on {path} (mode {stat.filemode(st.st_mode)}, gid {st.st_gid})",
            where=path,
            fix="add yourself to the socket's group (`sudo usermod -aG docker $USER`) and log in "
            "again; in a container add `--group-add $(stat -c %g /var/run/docker.sock)`",
        )
    return None


def _client(endpoint: Endpoint, environ: Mapping[str, str]) -> docker.DockerClient:
    kwargs: dict[str, Any] = {}
    if endpoint.source == "DOCKER_HOST":
        try:
            kwargs = docker.utils.kwargs_from_env(environment=dict(environ))
        except docker.errors.TLSParameterError as exc:
            raise DaemonTLSError(
                f"DOCKER_TLS_VERIFY is set but the TLS files are missing: {exc}",
                where=f"DOCKER_CERT_PATH={environ.get('DOCKER_CERT_PATH', '~/.docker')}",
                fix="put ca.pem, cert.pem and key.pem there, or unset DOCKER_TLS_VERIFY",
            ) from exc
    kwargs["base_url"] = endpoint.url
    try:
        client = docker.DockerClient(version=API_VERSION, timeout=60, **kwargs)
    except docker.errors.DockerException as exc:
        raise DaemonUnreachable(
            f"the daemon address {endpoint.url!r} is not usable: {exc}",
            where=endpoint.source,
            fix="write it as unix:///path/to/docker.sock, tcp://host:2376 or ssh://user@host",
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


def _unix_connect_error(path: str) -> OSError | None:
    # Probed with our own socket: docker-py leaves the socket of a failed unix connection to
    # the garbage collector (a ResourceWarning, an error under -W error).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
        except OSError as exc:
            return exc
    return None


def _wait_for_unix_socket(endpoint: Endpoint, deadline: float, wait: float) -> None:
    """Wait for a daemon that may be starting; explain a socket that never answers."""
    path = endpoint.url[len("unix://") :] or DEFAULT_SOCKET
    while True:
        error = _unix_connect_error(path)
        if error is None:
            return
        if isinstance(error, PermissionError) or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    problem = _socket_problem(path) or DaemonUnreachable(
        f"nothing answers on {path}: the socket exists but no daemon listens ({error.strerror or error})",
        where=path,
        fix="the daemon crashed or is restarting (a stale socket): start it again, e.g. "
        "`sudo systemctl restart docker`",
    )
    problem.where = f"{problem.where} (from {endpoint.source}), waited {wait:.0f} s"
    raise problem from error


def connect(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    wait: float = 5.0,
) -> tuple[docker.DockerClient, DaemonInfo]:
    """Connect to the daemon, waiting up to ``wait`` seconds for one that is starting.

    :raises DaemonError: saying what is wrong with the endpoint and how to fix it.
    """
    env = os.environ if environ is None else environ
    endpoint = resolve_endpoint(explicit, env)
    if endpoint.url.startswith("unix://"):
        # A permission problem will not go away by waiting; a missing socket may (starting daemon).
        problem = _socket_problem(endpoint.url[len("unix://") :] or DEFAULT_SOCKET)
        if isinstance(problem, DaemonPermissionDenied):
            raise problem
    deadline = time.monotonic() + wait
    if endpoint.url.startswith("unix://"):
        _wait_for_unix_socket(endpoint, deadline, wait)
    client = _client(endpoint, env)
    while True:
        try:
            client.ping()
            break
        except requests.exceptions.SSLError as exc:
            raise DaemonTLSError(
                f"TLS with the daemon failed: {exc}",
                where=f"{endpoint.url} (from {endpoint.source})",
                fix="check DOCKER_CERT_PATH holds the ca.pem, cert.pem and key.pem of this daemon",
            ) from exc
        except _MAYBE_STARTING as exc:
            if time.monotonic() < deadline:
                time.sleep(0.25)
                continue
            if endpoint.url.startswith("unix://"):
                problem = _socket_problem(endpoint.url[len("unix://") :] or DEFAULT_SOCKET)
                if problem is not None:
                    problem.where = f"{problem.where} (from {endpoint.source})"
                    raise problem from exc
            raise DaemonUnreachable(
                f"the Docker daemon at {endpoint.url} does not answer: {exc}",
                where=f"{endpoint.url} (from {endpoint.source}), waited {wait:.0f} s",
                fix="start the daemon or correct DOCKER_HOST; `infranode doctor` explains more",
            ) from exc
        except docker.errors.APIError as exc:
            raise DaemonError(
                f"the daemon at {endpoint.url} answered with an error: {exc}",
                where=endpoint.source,
                fix="a plain-HTTP client talking to a TLS port? set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH",
            ) from exc
    version = client.version()
    info = client.info()
    components = [c.get("Name", "") for c in version.get("Components", []) or []]
    security = " ".join(info.get("SecurityOptions", []) or [])
    return client, DaemonInfo(
        endpoint=endpoint.url,
        source=endpoint.source,
        server_version=str(version.get("Version", "?")),
        api_version=str(version.get("ApiVersion", "?")),
        cgroup_version=str(info.get("CgroupVersion", "1") or "1"),
        cgroup_driver=str(info.get("CgroupDriver", "?")),
        os=str(info.get("OperatingSystem", "?")),
        podman=any("podman" in c.lower() for c in components),
        rootless="rootless" in security,
    )
