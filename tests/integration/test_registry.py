"""The pull path for real: Debian's ``docker-registry`` on 127.0.0.1, used through ``registry_mirror``.

The registry is this project's own process (``docker-registry serve CONFIG`` on a free port, with
a throwaway config and storage), not the package's service. Docker allows plain-HTTP registries on
127.0.0.0/8 without configuration, so the daemon pulls from it like from any mirror. The package is
installed by ``scripts/ensure-docker.sh --test-tools`` on a root Debian machine.

Everything made here carries a test-unique name and is removed afterwards: the registry process
(by its PID), its directories, every tag pushed or pulled, and the prepared images of the test's
platforms.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import docker
import docker.errors
import pytest
import requests

from pytest_infranode import labels
from pytest_infranode.engine import Engine

pytestmark = pytest.mark.slow

REGISTRY_BIN = "/usr/bin/docker-registry"
BASE = "debian:12"
SESSION_RE = re.compile(r"session ([0-9a-f]{16})")
RUN_TIMEOUT = 300.0
"""Generous: a hang (a pull that waits forever on a dead registry) fails the test; no duration is asserted."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRegistry:
    """A ``docker-registry serve`` process on 127.0.0.1:<port>, owned by the test."""

    base: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.base / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if not os.access(REGISTRY_BIN, os.X_OK):
            pytest.fail(
                f"{REGISTRY_BIN} is missing: install Debian's docker-registry package "
                "(scripts/ensure-docker.sh --test-tools does it, as root)",
                pytrace=False,
            )
        config = self.base / "config.yml"
        config.write_text(
            textwrap.dedent(
                f"""
                version: 0.1
                log:
                  level: info
                storage:
                  filesystem:
                    rootdirectory: {self.base / "storage"}
                  delete:
                    enabled: true
                http:
                  addr: {self.host}
                """
            ),
            encoding="utf-8",
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"http://{self.host}/v2/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        log = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"the registry on {self.host} did not answer:\n{log}", pytrace=False)

    def stop(self) -> None:
        """Stop the registry (its own PID only) and wait until its port refuses connections."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    base = Path(tempfile.mkdtemp(prefix="inft-reg-"))
    lab = LocalRegistry(base, _free_port())
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def client(engine: Engine) -> Iterator[docker.DockerClient]:
    """The Docker SDK on the same daemon as ``engine``, to push and untag what the test made."""
    sdk = docker.DockerClient(base_url=engine.info.endpoint)
    yield sdk
    sdk.close()


@dataclass
class Made:
    """Every tag and platform the test created, removed at the end whatever happened."""

    client: docker.DockerClient
    engine: Engine
    tags: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        for platform in self.platforms:
            for image in self.engine.list_images(f"{labels.PLATFORM}={platform}"):
                self.client.api.remove_image(image.id, force=True)
        for tag in self.tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.client.api.remove_image(tag)  # untags; debian:12 keeps the layers


@pytest.fixture
def made(client: docker.DockerClient, engine: Engine) -> Iterator[Made]:
    record = Made(client, engine)
    yield record
    record.cleanup()
    left = [t for t in record.tags if engine.has_image(t)]
    assert not left, f"tags left behind: {left}"


def _platform_yaml(mirror: str, platforms: dict[str, str]) -> str:
    """A no-op converge on init-less nodes of the given images (the pull is what is tested)."""
    body = "".join(
        f"  {name}:\n    image: {image}\n    init: none\n    prepare: []\n    command: [sleep, infinity]\n"
        for name, image in platforms.items()
    )
    head = "provisioner:\n  name: shell\n  inline: ['true']\n"
    return f"{head}registry_mirror: {mirror}\nplatform_definitions:\n{body}"


def _run(pytester: pytest.Pytester, engine: Engine, *args: str) -> tuple[pytest.RunResult, str]:
    """An inner session in a subprocess, bounded by RUN_TIMEOUT; it must leave no container."""
    result = pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT)
    out = result.stdout.str()
    match = SESSION_RE.search(out)
    if match:
        left = engine.list_containers([f"{labels.SESSION}={match.group(1)}"])
        assert not left, f"session {match.group(1)} left containers: {[c.name for c in left]}"
    return result, out


def test_pulled_once_through_the_mirror_then_found_locally(
    pytester: pytest.Pytester,
    engine: Engine,
    client: docker.DockerClient,
    registry: LocalRegistry,
    made: Made,
) -> None:
    """debian:12 pushed as ``<unique>:12`` into the registry's ``library/``; a session whose platform
    image is the plain Docker Hub name ``<unique>:12`` pulls it through ``registry_mirror`` once,
    the next session finds it on the daemon, and ``--infra-pull=always`` pulls it again."""
    unique = f"infranode-regtest-{uuid.uuid4().hex[:8]}"
    image = f"{unique}:12"
    remote = f"{registry.host}/library/{unique}:12"
    platform = f"reg-{unique[-8:]}"
    made.platforms.append(platform)
    made.tags += [remote, image]

    assert client.api.tag(BASE, f"{registry.host}/library/{unique}", "12")
    for line in client.api.push(f"{registry.host}/library/{unique}", tag="12", stream=True, decode=True):
        assert "error" not in line, line
    client.api.remove_image(remote)  # untag: the daemon no longer has the image under either name
    assert not engine.has_image(remote)
    assert not engine.has_image(image)

    pytester.makefile(".yaml", infranode=_platform_yaml(registry.host, {platform: image}))
    pytester.makepyfile(
        """
        def test_os(host):
            assert host.file("/etc/debian_version").content_string.startswith("12")
        """
    )

    first, out = _run(pytester, engine, f"--infra-platform={platform}")
    first.assert_outcomes(passed=1)
    assert f"infranode: {image}: pulling {remote} (registry mirror {registry.host})" in out
    assert f"infranode: {platform}: {image} is not on the daemon" in out
    assert out.count(": pulling ") == 1
    assert engine.image_id(image) == engine.image_id(BASE)  # tagged back under the name the user wrote
    assert f"/v2/library/{unique}/manifests/12" in registry.log.read_text(errors="replace")

    second, out = _run(pytester, engine, f"--infra-platform={platform}")
    second.assert_outcomes(passed=1)
    assert "pulling" not in out
    assert "is not on the daemon" not in out
    assert f"infranode: {platform}: prepared image " in out
    assert "(cache hit)" in out

    third, out = _run(pytester, engine, f"--infra-platform={platform}", "--infra-pull=always")
    third.assert_outcomes(passed=1)
    assert f"infranode: {image}: pulling {remote} (registry mirror {registry.host})" in out
    assert "is not on the daemon" not in out  # always: the daemon's copy is not even looked at


def test_missing_tag_is_a_plain_404(
    pytester: pytest.Pytester, engine: Engine, registry: LocalRegistry, made: Made
) -> None:
    unique = f"infranode-regtest-{uuid.uuid4().hex[:8]}"
    image = f"{unique}:absent"
    platform = f"reg-{unique[-8:]}"
    made.platforms.append(platform)
    made.tags += [image, f"{registry.host}/library/{image}"]
    pytester.makefile(".yaml", infranode=_platform_yaml(registry.host, {platform: image}))
    pytester.makepyfile("def test_a(host):\n    pass\n")

    result, out = _run(pytester, engine, f"--infra-platform={platform}")
    result.assert_outcomes(errors=1)
    assert f"could not be pulled from {registry.host}/library/{image}" in out
    assert "the registry has no such image or tag (404)" in out
    assert f"no way to get image {image} for platform {platform}" in out
    assert "check the image name and tag in the platform" in out
    assert "retrying" not in out  # a 404 is not worth another try
    assert "Traceback" not in out


def test_stopped_registry_is_refused_in_plain_words(
    pytester: pytest.Pytester, engine: Engine, registry: LocalRegistry, made: Made
) -> None:
    """The registry is stopped before the session: the pull is refused, retried a few times with
    backoff, then reported; the subprocess's timeout fails the test if anything waits forever."""
    unique = f"infranode-regtest-{uuid.uuid4().hex[:8]}"
    image = f"{unique}:12"
    platform = f"reg-{unique[-8:]}"
    made.platforms.append(platform)
    made.tags += [image, f"{registry.host}/library/{image}"]
    registry.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{registry.host}/v2/", timeout=5)
    pytester.makefile(".yaml", infranode=_platform_yaml(registry.host, {platform: image}))
    pytester.makepyfile("def test_a(host):\n    pass\n")

    result, out = _run(pytester, engine, f"--infra-platform={platform}", "--infra-pull=always")
    result.assert_outcomes(errors=1)
    assert f"could not be pulled from {registry.host}/library/{image}" in out
    assert "nothing answers at the registry's address (registry stopped, or wrong port)" in out
    assert "start the registry, or check its address and port" in out
    assert "connection refused" in out
    assert out.count("; retrying") == 3  # four attempts in all
    assert "500 Server Error" not in out  # docker-py's wrapping, not what went wrong
    assert "Traceback" not in out
