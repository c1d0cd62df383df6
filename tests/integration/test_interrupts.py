"""Ctrl-C and SIGTERM at each phase of a session: a real pytest process, a real daemon.

Each test starts ``python -m pytest`` in a project of its own, waits for the line that says the
phase is under way, sends the signal and checks what the user gets: an exit soon after (the
bound is generous: a behaviour check, not a speed claim; the measured time is printed), exit
code 2 with pytest's "!!! KeyboardInterrupt" line, the one line saying where the session was
interrupted, no traceback, and no container of the session left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from tests.integration.conftest import SESSION_RE
from tests.integration.conftest import as_from_a_terminal

BOUND = 15.0
"""Seconds from the signal to the exit that the checks allow (measured: about 2 s)."""
REACH = 300.0
"""Seconds allowed to reach the phase (an uncached image build, a first boot)."""

TEST_ETC = """
def test_etc(host):
    assert host.file("/etc").is_directory
"""


@dataclass
class Interrupted:
    output: str
    returncode: int
    seconds: float
    """From the first signal to the exit."""
    session_id: str


class Session:
    """``python -m pytest`` in ``project``, its output read as it comes."""

    def __init__(self, project: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            as_from_a_terminal([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", *args]),
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str) -> None:
        deadline = time.monotonic() + REACH
        while marker not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.close()
                pytest.fail(f"the session never reached {marker!r}:\n{self.output}")
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def interrupt(self, *signals: signal.Signals, gap: float = 0.05) -> Interrupted:
        started = time.monotonic()
        for i, signum in enumerate(signals):
            if i:
                time.sleep(gap)
            self.proc.send_signal(signum)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.close()
            pytest.fail(f"the session did not end 120 s after the signal:\n{self.output}")
        seconds = time.monotonic() - started
        self.close()
        found = SESSION_RE.search(self.output)
        return Interrupted(self.output, self.proc.returncode, seconds, found.group(1) if found else "")


def run_and_interrupt(
    project: Path,
    marker: str,
    *signals: signal.Signals,
    args: tuple[str, ...] = ("--infra-platform=debian-12",),
    settle: float = 0.0,
) -> Interrupted:
    session = Session(project, *args)
    session.wait_for(marker)
    time.sleep(settle)
    return session.interrupt(*signals)


def left_by(engine: Engine, session_id: str) -> list[str]:
    return [c.name for c in engine.list_containers([f"{labels.SESSION}={session_id}"])]


def check_interrupted(run: Interrupted, engine: Engine, during: str, reason: str = "SIGINT") -> None:
    """What every interrupt must give; ``during`` is the start of where it was interrupted."""
    print(f"\ninterrupt during {during!r} ({reason}): exit {run.seconds:.2f} s after the signal")
    assert run.session_id, run.output
    assert run.returncode == 2, run.output
    assert run.seconds < BOUND, run.output
    assert f"infranode: interrupted ({reason}) during {during}" in run.output, run.output
    assert "!!! KeyboardInterrupt" in run.output, run.output
    assert "Traceback" not in run.output, run.output
    assert "INTERNALERROR" not in run.output, run.output
    assert left_by(engine, run.session_id) == [], run.output


def shell(pytester: pytest.Pytester, inline: str, extra: str = "") -> None:
    pytester.makefile(".yaml", infranode=f"provisioner:\n  name: shell\n  inline: [{inline!r}]\n{extra}")


def test_sigint_during_the_converge(pytester: pytest.Pytester, engine: Engine) -> None:
    shell(pytester, "echo converging-$((6*7)); sleep 45")
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(pytester.path, "converging-42", signal.SIGINT)
    check_interrupted(run, engine, "the converge of infranode-")
    assert "removed 1 node(s)" in run.output


def test_sigterm_during_the_converge(pytester: pytest.Pytester, engine: Engine) -> None:
    shell(pytester, "echo converging-$((6*7)); sleep 45")
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(pytester.path, "converging-42", signal.SIGTERM)
    check_interrupted(run, engine, "the converge of infranode-", reason="SIGTERM")
    assert "removed 1 node(s)" in run.output


def test_sigint_kills_a_runner_side_tool(pytester: pytest.Pytester, engine: Engine) -> None:
    """ansible-playbook runs on the runner: its whole process group is killed."""
    pytester.makefile(".yaml", infranode="provisioner: {name: ansible, playbook: site.yml}\n")
    token = uuid.uuid4().hex
    pytester.makefile(
        ".yml",
        site=f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: A long step {token}
              ansible.builtin.command: sleep 45
        """,
    )
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(pytester.path, f"TASK [A long step {token}]", signal.SIGINT, settle=1.0)
    check_interrupted(run, engine, "the converge of infranode-")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert token not in ps, "ansible-playbook outlived the session"


def test_sigint_during_the_idempotence_run(pytester: pytest.Pytester, engine: Engine) -> None:
    shell(pytester, "if [ -e /tmp/once ]; then echo second-run-$((6*7)); sleep 45; fi; touch /tmp/once")
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(
        pytester.path,
        "second-run-42",
        signal.SIGINT,
        args=("--infra-platform=debian-12", "--infra-idempotence"),
    )
    check_interrupted(run, engine, "the idempotence run of infranode-")


def test_sigint_during_the_side_effect(pytester: pytest.Pytester, engine: Engine) -> None:
    side_effect = "['echo side-effect-$((6*7)); sleep 45']"
    shell(pytester, "true", extra=f"nodes:\n  web:\n    side_effect: {side_effect}\n")
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(pytester.path, "side-effect-42", signal.SIGINT)
    check_interrupted(run, engine, "the side effect of infranode-")


def test_sigint_during_a_test(pytester: pytest.Pytester, engine: Engine) -> None:
    shell(pytester, "true")
    pytester.makepyfile(
        """
        import time

        def test_slow(host):
            print("test-now", flush=True)
            time.sleep(45)
        """
    )
    run = run_and_interrupt(pytester.path, "test-now", signal.SIGINT)
    check_interrupted(run, engine, "test test_sigint_during_a_test.py::test_slow[debian-12]")
    assert "removed 1 node(s)" in run.output


def test_sigterm_during_the_teardown(pytester: pytest.Pytester, engine: Engine) -> None:
    """The removal goes on (nothing is raised into it) and the run still ends with code 2."""
    shell(pytester, "true")
    pytester.makepyfile(TEST_ETC)
    pytester.makeconftest(
        """
        import time

        def pytest_infranode_before_remove(node):
            print("removing-now", flush=True)
            time.sleep(3)
        """
    )
    run = run_and_interrupt(pytester.path, "removing-now", signal.SIGTERM)
    check_interrupted(run, engine, "the teardown", reason="SIGTERM")
    assert "removed 1 node(s)" in run.output
    assert "1 passed" in run.output


def test_sigint_during_the_boot_wait(pytester: pytest.Pytester, engine: Engine) -> None:
    """debian-12's recipe plus a unit that holds systemd in "starting": the boot wait goes on."""
    debian = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")
    unit = r"[Unit]\nDescription=slow\n[Service]\nType=oneshot\nExecStart=/bin/sleep 600\n"
    unit += r"[Install]\nWantedBy=multi-user.target\n"
    prepare = [
        *debian.prepare,
        f'printf "{unit}" > /etc/systemd/system/slow.service',
        "systemctl enable slow.service",
    ]
    definition = {"intr-slowboot": {"base": "debian-12", "prepare": prepare}}
    shell(pytester, "true", extra=yaml.safe_dump({"platform_definitions": definition}))
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(
        pytester.path, "created, booting", signal.SIGINT, args=("--infra-platform=intr-slowboot",), settle=1.0
    )
    check_interrupted(run, engine, "the boot wait of infranode-")
    assert "removed 1 node(s)" in run.output


def test_sigint_during_an_uncached_image_build(pytester: pytest.Pytester, engine: Engine) -> None:
    """The build is cancelled: no build container, no image of the recipe left."""
    token = uuid.uuid4().hex[:12]
    name = f"intr-{token}"
    shell(
        pytester,
        "true",
        extra=(
            f"platform_definitions:\n  {name}:\n    base: debian-12\n"
            f"    prepare: ['echo build-{token}', 'sleep 120']\n"
        ),
    )
    pytester.makepyfile(TEST_ETC)
    client = docker.from_env()
    try:
        run = run_and_interrupt(
            pytester.path,
            "building the prepared image",
            signal.SIGINT,
            args=(f"--infra-platform={name}",),
            settle=3.0,  # the build's RUN step is under way
        )
        check_interrupted(run, engine, f"the build of the prepared image infranode/{name}:")
        assert "removed 0 node(s)" in run.output
        deadline = time.monotonic() + 10  # the daemon removes the build container as it cancels
        while True:
            found = client.containers.list(all=True)
            building = [c.id for c in found if token in " ".join(c.attrs["Config"]["Cmd"] or [])]
            if not building or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert building == [], "the build container is still there"
        assert client.images.list(all=True, filters={"label": f"{labels.PLATFORM}={name}"}) == []
    finally:
        client.close()


def test_two_quick_sigints(pytester: pytest.Pytester, engine: Engine) -> None:
    """The second one only says the removal goes on; the removal completes."""
    shell(pytester, "echo converging-$((6*7)); sleep 45")
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(pytester.path, "converging-42", signal.SIGINT, signal.SIGINT)
    check_interrupted(run, engine, "the converge of infranode-")
    assert "infranode: interrupted again (SIGINT): still removing the nodes of session" in run.output
    assert "removed 1 node(s)" in run.output


def test_three_sigints_leave_the_removal_to_the_watchdog(pytester: pytest.Pytester, engine: Engine) -> None:
    shell(pytester, "echo converging-$((6*7)); sleep 45")
    pytester.makepyfile(TEST_ETC)
    run = run_and_interrupt(pytester.path, "converging-42", signal.SIGINT, signal.SIGINT, signal.SIGINT)
    print(f"\nthree SIGINTs: exit {run.seconds:.2f} s after the first")
    assert run.returncode == 2, run.output
    assert run.seconds < BOUND, run.output
    assert "interrupted a third time (SIGINT): exiting now; the watchdog removes" in run.output
    assert "Traceback" not in run.output, run.output
    deadline = time.monotonic() + 30
    while left_by(engine, run.session_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left_by(engine, run.session_id) == [], "the watchdog did not remove the node"


class StalledRegistry:
    """A registry on 127.0.0.1 (which dockerd takes as insecure) that answers `/v2/` and then
    never answers: the daemon's pull hangs at the manifest, as behind a stuck registry."""

    def __init__(self) -> None:
        import http.server
        import socketserver

        self.asked: list[str] = []
        self.release = threading.Event()
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.asked.append(self.path)
                if self.path.rstrip("/") == "/v2":
                    self.send_response(200)
                    self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                registry.release.wait(600)  # stall; released when the test ends
                self.send_error(404)

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()  # the daemon's own request gets its answer (a 404) and ends
        self.server.shutdown()
        self.server.server_close()


def test_sigint_during_an_image_pull(pytester: pytest.Pytester, engine: Engine) -> None:
    """A pull from a registry that accepted the connection and stalls: the daemon sends no
    response at all until the registry answers, and the interrupt stops the wait at once."""
    registry = StalledRegistry()
    token = uuid.uuid4().hex[:12]
    image = f"127.0.0.1:{registry.port}/infranode-stall-{token}:latest"
    shell(pytester, "true", extra=f"platform_definitions:\n  stall-{token}:\n    image: {image!r}\n")
    pytester.makepyfile(TEST_ETC)
    try:
        session = Session(pytester.path, f"--infra-platform=stall-{token}")
        session.wait_for(f"pulling {image}")
        deadline = time.monotonic() + 60
        while not any("/manifests/" in path for path in registry.asked):  # the daemon waits on us
            assert time.monotonic() < deadline, f"the daemon never asked for the manifest: {registry.asked}"
            time.sleep(0.1)
        time.sleep(1.0)
        run = session.interrupt(signal.SIGINT)
        check_interrupted(run, engine, f"the pull of {image}")
        assert "removed 0 node(s)" in run.output
    finally:
        registry.close()
