"""The example suite (examples/nginx, 11 checks) for real over remote transports (issue 7).

Each test runs the example in a subprocess pytest with ``DOCKER_HOST`` (and, for TLS,
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) set, and asserts 11 passed and no container of that
session left behind.

* plain TCP and TLS: a small forwarder started by the test (asyncio, in a thread) listens on
  127.0.0.1 and forwards to /var/run/docker.sock; the TLS one terminates TLS and requires a
  client certificate made with the lab's ``make_certs``. The daemon behind the forwarder is the
  HOST daemon: the transport is remote, the engine is the same. (The lab dockerds run with
  ``--iptables=false``/``--ip-masq=false``, so their containers have no outbound network, and
  the example's converge needs the Debian mirror.)
* ssh: ``DOCKER_HOST=ssh://root@127.0.0.1:PORT`` through the lab sshd (``docker system
  dial-stdio`` on the far side, i.e. again the host daemon).

Podman is not run here: the lab's Podman service uses netns ``none``, so the example cannot
converge there; its whole lifecycle is proven in test_podman.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example
from tests.integration.lab import CertSet
from tests.integration.lab import LabSshd
from tests.integration.lab import make_certs
from tests.integration.lab import start_sshd

pytestmark = pytest.mark.slow

Run = Callable[..., InfraRun]
HOST_SOCKET = "/var/run/docker.sock"


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError, ssl.SSLError):
            if writer.can_write_eof():
                writer.write_eof()  # half-close: the far side may still answer
            else:
                writer.close()  # TLS cannot half-close


@dataclass
class Forwarder:
    """127.0.0.1:``port`` (plain, or TLS when ``tls`` is set) forwarding to the host socket."""

    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    server: asyncio.AbstractServer

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def shut() -> None:
            self.server.close()
            await self.server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def start_forwarder(tls: ssl.SSLContext | None = None) -> Forwarder:
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(HOST_SOCKET)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls))
    port = int(server.sockets[0].getsockname()[1])
    thread = threading.Thread(target=loop.run_forever, name=f"forwarder-{port}", daemon=True)
    thread.start()
    return Forwarder(port, loop, thread, server)


@pytest.fixture(scope="module")
def lab_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="inft-remote-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def certs(lab_dir: Path) -> CertSet:
    return make_certs(lab_dir / "certs")


@pytest.fixture(scope="module")
def tcp_forwarder() -> Iterator[Forwarder]:
    fwd = start_forwarder()
    yield fwd
    fwd.stop()


@pytest.fixture(scope="module")
def tls_forwarder(certs: CertSet) -> Iterator[Forwarder]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.server / "ca.pem"))
    ctx.load_cert_chain(str(certs.server / "cert.pem"), str(certs.server / "key.pem"))
    ctx.verify_mode = ssl.CERT_REQUIRED  # like dockerd --tlsverify: a client certificate or nothing
    fwd = start_forwarder(ctx)
    yield fwd
    fwd.stop()


@pytest.fixture(scope="module")
def sshd(lab_dir: Path) -> Iterator[LabSshd]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    lab = start_sshd(lab_dir, port)
    yield lab
    lab.stop()


def _clean_docker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "dockercfg"
    cfg.mkdir(exist_ok=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))  # no current context from the runner's config


def _run_example(pytester: pytest.Pytester, infra_run: Run, endpoint: str) -> None:
    copy_example(pytester, "nginx")
    run = infra_run("-v", subprocess=True)  # the env set by the caller is the subprocess's env
    run.result.assert_outcomes(passed=11)
    assert run.session_id, run.result.stdout.str()
    run.result.stdout.fnmatch_lines([f"infranode: daemon * via {endpoint} [[]DOCKER_HOST[]]*"])
    run.result.stdout.fnmatch_lines(["*test_page_is_served[[]debian-12[]] PASSED*"])


def test_example_over_plain_tcp(
    pytester: pytest.Pytester,
    infra_run: Run,
    tcp_forwarder: Forwarder,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _clean_docker_env(monkeypatch, tmp_path)
    monkeypatch.setenv("DOCKER_HOST", tcp_forwarder.url)
    _run_example(pytester, infra_run, tcp_forwarder.url)


def test_example_over_tls(
    pytester: pytest.Pytester,
    infra_run: Run,
    tls_forwarder: Forwarder,
    certs: CertSet,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _clean_docker_env(monkeypatch, tmp_path)
    monkeypatch.setenv("DOCKER_HOST", tls_forwarder.url)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs.client))
    _run_example(pytester, infra_run, tls_forwarder.url)


def test_example_over_ssh(
    pytester: pytest.Pytester,
    infra_run: Run,
    sshd: LabSshd,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _clean_docker_env(monkeypatch, tmp_path)
    monkeypatch.setenv("HOME", str(sshd.home))  # paramiko reads $HOME/.ssh/{config,known_hosts}
    monkeypatch.setenv("DOCKER_HOST", sshd.url)
    _run_example(pytester, infra_run, sshd.url)
