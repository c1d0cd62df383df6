"""Gathering the facts, each probe small and bounded: a ``stat`` and one connect of a unix
socket; a TCP connect, one plain HTTP request and one TLS handshake; the client's TLS files and
certificates; ``ssh … docker version`` as docker-py's ssh transport would run it."""

from __future__ import annotations

import errno
import grp
import ipaddress
import os
import pwd
import socket
import ssl
import stat
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from pytest_infranode.engine.diagnosis.facts import CertInfo
from pytest_infranode.engine.diagnosis.facts import PortFacts
from pytest_infranode.engine.diagnosis.facts import SocketFacts
from pytest_infranode.engine.diagnosis.facts import SshFacts
from pytest_infranode.engine.diagnosis.facts import TLSFacts
from pytest_infranode.engine.diagnosis.facts import known_hosts_name

if TYPE_CHECKING:
    from pytest_infranode.engine.daemon import TLSFiles


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
        name = known_hosts_name(host, port)
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
