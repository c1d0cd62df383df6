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
* docker-in-docker without ``--privileged``: a different engine, a dockerd inside a container of
  the host daemon (SYS_ADMIN, NET_ADMIN, seccomp and AppArmor unconfined), its API published on
  127.0.0.1, once in plain TCP and once with TLS and client certificates (docker:dind's default,
  GitLab's topology); its nodes reach the mirror through the host daemon's bridge.

Podman: the example suite runs against the lab's Podman service in test_podman.py (one Podman
service per module), its nodes networked by slirp4netns.
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
from dataclasses import field
from pathlib import Path

import docker
import docker.tls
import pytest

from pytest_infranode import labels
from pytest_infranode.engine.containers import tar_files
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

    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def stop(self) -> None:
        """Close the listener and every connection still open, then the loop itself."""

        async def shut() -> None:
            self.server.close()
            for writer in list(self.writers):
                with contextlib.suppress(Exception):
                    writer.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0.1)
            await self.server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def start_forwarder(tls: ssl.SSLContext | None = None) -> Forwarder:
    loop = asyncio.new_event_loop()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(HOST_SOCKET)
        except OSError:
            writer.close()
            writers.discard(writer)
            return
        writers.add(up_writer)
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                writers.discard(w)
                with contextlib.suppress(Exception):
                    w.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls))
    port = int(server.sockets[0].getsockname()[1])
    thread = threading.Thread(target=loop.run_forever, name=f"forwarder-{port}", daemon=True)
    thread.start()
    return Forwarder(port, loop, thread, server, writers)


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


# --- docker-in-docker without --privileged ---------------------------------------------------

DIND_IMAGE = "infranode-test/dind:12"
DIND_LABEL = "infranode.test.dind"
DIND_DOCKERFILE = """\
FROM debian:12
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      docker.io iptables ca-certificates procps \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/entrypoint.sh
VOLUME /var/lib/docker
EXPOSE 2375 2376
ENTRYPOINT ["/bin/sh", "/usr/local/bin/entrypoint.sh"]
"""
# Without --privileged the container's cgroup v1 controllers are read-only binds of its own
# subtree: a bind remount makes them writable (a plain remount says "busy"). / must be shared
# for the inner daemon's mount propagation. Under cgroup v2, move out of the root cgroup and
# delegate the controllers, like docker:dind.
DIND_ENTRYPOINT = """\
#!/bin/sh
set -u
mount --make-rshared / || echo "dind: cannot make / rshared" >&2
if grep -q ' /sys/fs/cgroup cgroup2 ' /proc/self/mounts; then
  mount -o remount,rw /sys/fs/cgroup || echo "dind: /sys/fs/cgroup stays read-only" >&2
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \\
    > /sys/fs/cgroup/cgroup.subtree_control || echo "dind: no cgroup v2 delegation" >&2
else
  awk '$3 == "cgroup" && $4 ~ /(^|,)ro(,|$)/ {print $2}' /proc/self/mounts | while read -r d; do
    mount -o remount,bind,rw "$d" || echo "dind: $d stays read-only" >&2
  done
fi
rm -f /var/run/docker.pid
exec dockerd --host=unix:///var/run/docker.sock "$@"
"""


@dataclass
class Dind:
    url: str
    container_id: str
    cert_dir: Path | None = None  # the client's ca.pem/cert.pem/key.pem when the daemon wants TLS

    def env(self) -> dict[str, str]:
        if self.cert_dir is None:
            return {"DOCKER_HOST": self.url}
        return {"DOCKER_HOST": self.url, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.cert_dir)}

    def client(self, timeout: int = 60) -> docker.DockerClient:
        tls: docker.tls.TLSConfig | bool = False
        if self.cert_dir is not None:
            tls = docker.tls.TLSConfig(
                client_cert=(str(self.cert_dir / "cert.pem"), str(self.cert_dir / "key.pem")),
                ca_cert=str(self.cert_dir / "ca.pem"),
                verify=True,
            )
        client = docker.DockerClient(base_url=self.url, version="1.41", timeout=timeout, tls=tls)
        # As the plugin does: REQUESTS_CA_BUNDLE (set on many machines) would replace the lab CA.
        client.api.trust_env = False
        return client


@contextlib.contextmanager
def dind_image(ctx: Path) -> Iterator[str]:
    """The dind image (debian:12 + Debian's docker.io), built in ``ctx``; removed afterwards."""
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DIND_DOCKERFILE)
    (ctx / "entrypoint.sh").write_text(DIND_ENTRYPOINT)
    host = docker.DockerClient(base_url=f"unix://{HOST_SOCKET}", version="1.41")
    try:
        host.images.build(path=str(ctx), tag=DIND_IMAGE, rm=True, forcerm=True, labels={DIND_LABEL: "1"})
        yield DIND_IMAGE
    finally:
        with contextlib.suppress(Exception):
            host.images.remove(DIND_IMAGE, force=True)
        host.close()


class DindError(RuntimeError):
    pass


@contextlib.contextmanager
def start_dind(image: str, mode: str, certs: CertSet, name: str) -> Iterator[Dind]:
    """A docker:dind-like daemon in a container of the host daemon, with the least capabilities
    (SYS_ADMIN, NET_ADMIN, seccomp and AppArmor unconfined; no --privileged); its API published
    on 127.0.0.1: plain on 2375 (``mode="tcp"``), or, like docker:dind's default (GitLab), TLS
    on 2376 with client certificates required (``mode="tls"``: the lab's server certificate is
    put in before the daemon starts). Its own iptables live in the container's network
    namespace; its containers reach the network through the host daemon's bridge. debian:12 is
    copied in (no registry). The container is removed afterwards."""
    import time

    if mode == "tls":
        port = "2376/tcp"
        command = [
            "--host=tcp://0.0.0.0:2376", "--tlsverify", "--tlscacert=/certs/server/ca.pem",
            "--tlscert=/certs/server/cert.pem", "--tlskey=/certs/server/key.pem",
        ]  # fmt: skip
    else:
        port, command = "2375/tcp", ["--host=tcp://0.0.0.0:2375", "--tls=false"]
    host = docker.DockerClient(base_url=f"unix://{HOST_SOCKET}", version="1.41")
    container = None
    try:
        container = host.containers.create(
            image,
            command=command,
            detach=True,
            cap_add=["SYS_ADMIN", "NET_ADMIN"],
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            ports={port: ("127.0.0.1", None)},
            labels={DIND_LABEL: "1"},
            name=name,
        )
        if mode == "tls":
            pems = ("ca.pem", "cert.pem", "key.pem")
            files = {
                f"certs/server/{n}": ((certs.server / n).read_bytes(), 0o600 if n == "key.pem" else 0o644)
                for n in pems
            }
            if not container.put_archive("/", tar_files(files)):
                raise DindError("could not copy the server certificate into the dind container")
        container.start()
        container.reload()
        published = int(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])
        lab = Dind(f"tcp://127.0.0.1:{published}", str(container.id), certs.client if mode == "tls" else None)
        deadline = time.monotonic() + 60
        while True:
            inner = lab.client(timeout=5)
            try:
                inner.ping()
                break
            except Exception:
                inner.close()
                container.reload()
                if container.status != "running" or time.monotonic() > deadline:
                    raise DindError(
                        f"the dind daemon did not answer on {lab.url}:\n{container.logs()[-3000:]!r}"
                    ) from None
                time.sleep(0.3)
        inner.close()
        # Loading 200 MB into the inner daemon's storage takes longer than a ping may.
        loader = lab.client(timeout=300)
        try:
            loader.images.load(b"".join(host.images.get("debian:12").save(named=True)))
        finally:
            loader.close()
        yield lab
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        host.close()


@pytest.fixture(scope="module")
def dind_built(lab_dir: Path) -> Iterator[str]:
    with dind_image(lab_dir / "dind") as image:
        yield image


@pytest.fixture(scope="module", params=["tcp", "tls"])
def dind(request: pytest.FixtureRequest, lab_dir: Path, dind_built: str, certs: CertSet) -> Iterator[Dind]:
    mode = str(request.param)
    with start_dind(dind_built, mode, certs, f"infranode-test-dind-{mode}-{lab_dir.name[-8:]}") as lab:
        yield lab


def test_example_on_docker_in_docker(
    pytester: pytest.Pytester,
    infra_run: Run,
    dind: Dind,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The example on a second engine, reached over plain TCP, then over TLS with a client
    certificate (GitLab's docker:dind topology)."""
    _clean_docker_env(monkeypatch, tmp_path)
    for name, value in dind.env().items():
        monkeypatch.setenv(name, value)
    copy_example(pytester, "nginx")
    run = infra_run("-v", subprocess=True)
    run.result.assert_outcomes(passed=11)
    run.result.stdout.fnmatch_lines([f"infranode: daemon * via {dind.url} [[]DOCKER_HOST[]]*"])
    inner = dind.client()
    try:  # the nodes ran on the inner daemon: that is where none may be left
        left = inner.containers.list(all=True, filters={"label": f"{labels.SESSION}={run.session_id}"})
    finally:
        inner.close()
    assert run.session_id
    assert not left, [c.name for c in left]
