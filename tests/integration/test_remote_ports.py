"""Published ports of a node behind a tcp:// daemon resolve to the daemon's host, not 127.0.0.1.

The "remote" daemon is this machine's daemon reached over TCP on a non-loopback address (a
small forwarder to the unix socket): the plugin must then hand tests that address.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Callable
from collections.abc import Iterator

import pytest

from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]


def _non_loopback_ipv4() -> str:
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    for line in out.stdout.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith(("127.", "172.17.")):
            return addr
    pytest.fail(f"this test needs a non-loopback IPv4 address on the machine; `ip addr` said:\n{out.stdout}")


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def tcp_daemon() -> Iterator[str]:
    """``tcp://<this machine's address>:<port>`` forwarding to /var/run/docker.sock."""
    address = _non_loopback_ipv4()
    server = socket.create_server((address, 0))
    port = server.getsockname()[1]
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect("/var/run/docker.sock")
            conns.extend((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://{address}:{port}"
    finally:
        stop.set()
        server.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


def test_ports_resolve_to_the_daemons_host(
    pytester: pytest.Pytester, infra_run: Run, tcp_daemon: str
) -> None:
    host = tcp_daemon.removeprefix("tcp://").rsplit(":", 1)[0]
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - mkdir -p /srv && echo remote-page > /srv/index.html
            - |
              cat > /etc/systemd/system/page.service <<'UNIT'
              [Service]
              ExecStart=/usr/bin/python3 -m http.server 8080 --directory /srv
              UNIT
              systemctl daemon-reload && systemctl start page
        nodes:
          app: {ports: [8080]}
        """,
    )
    pytester.makepyfile(
        f"""
        import time
        import urllib.request

        def test_port(infra_node):
            address, port = infra_node.port(8080)
            assert address == "{host}"
            for _ in range(50):
                try:
                    with urllib.request.urlopen(f"http://{{address}}:{{port}}/", timeout=2) as page:
                        assert page.read() == b"remote-page\\n"
                    return
                except OSError:
                    time.sleep(0.2)
            raise AssertionError(f"nothing answers on {{address}}:{{port}}")
        """
    )
    run = infra_run(
        f"--infra-docker-host={tcp_daemon}", "--infra-platform=debian-12", "-p", "no:cacheprovider"
    )
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines([f"*via tcp://{host}:*"])
