"""What the probes found, as frozen values for the verdicts to read (no I/O here): a unix socket,
a TCP port, the client's TLS files, a certificate, an ssh:// address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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


def known_hosts_name(host: str, port: int) -> str:
    """How ``known_hosts`` names a host: bare on port 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"
