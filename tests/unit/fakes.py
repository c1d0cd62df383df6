"""The one fake engine of the unit tests: containers in a dict, every call recorded. No daemon.

It answers what nodes, provisioners, the session and the reaper ask: containers are made,
started, renamed and removed; an exec of the boot wait answers what
:attr:`FakeEngine.boot_answers` says (``running`` unless told); other execs answer what
:attr:`FakeEngine.exec_answers` says (by program name), else exit 0 (or, with
:attr:`FakeEngine.answered_only`, fail the test).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TypeVar

from pytest_infranode.boot import BOOT_WAIT
from pytest_infranode.engine.api import ContainerInfo
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.engine.api import NetworkInfo
from pytest_infranode.engine.api import OutputSink
from pytest_infranode.engine.api import ShellStream
from pytest_infranode.platforms import Platform

T = TypeVar("T")

INFO = DaemonInfo(
    endpoint="unix:///fake.sock",
    source="a test",
    server_version="0",
    api_version="1.41",
    cgroup_version="2",
    cgroup_driver="systemd",
    os="fake",
)


def _next(answers: list[T]) -> T:
    """The first answer, taken off the list unless it is the last."""
    return answers.pop(0) if len(answers) > 1 else answers[0]


def _matches(found: Mapping[str, str], label_filters: Sequence[str]) -> bool:
    """Whether labels pass the daemon's ``label`` filters (``key`` or ``key=value``, all of them)."""
    for f in label_filters:
        key, _, value = f.partition("=")
        if key not in found or (value and found[key] != value):
            return False
    return True


@dataclass
class FakeContainer:
    id: str
    name: str
    labels: dict[str, str]
    image: str
    state: str = "created"
    files: dict[str, bytes] = field(default_factory=dict)


class FakeEngine:
    """An engine whose daemon is a dict; :attr:`calls` lists what it was asked, in order."""

    def __init__(self) -> None:
        self.info = INFO
        self.containers: dict[str, FakeContainer] = {}
        self.networks: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        """``(operation, container name or subject)``."""
        self.exec_answers: dict[str, ExecResult] = {}
        self.answered_only = False
        """Fail the test on an exec that ``exec_answers`` does not answer."""
        self.boot_answers: list[ExecResult] = [ExecResult(0, b"running\n", b"")]
        """What the boot wait answers, in turn; the last one again and again."""
        self.boot_rounds: list[int] = []
        """How many times each boot wait was allowed to ask systemd."""
        self.state_answers: list[str] = []
        """When set, what ``container_state`` answers, in turn (the last one again and again),
        instead of the container's own state: a node whose init dies, say."""
        self.fail_create: set[str] = set()
        # As a daemon whose kernel has no IPv6: a start whose request asks for an IPv6 sysctl
        # fails, as the real engine says it (KernelWithoutIPv6), and the engine learns it.
        self.kernel_ipv6 = True
        self.sysctls_of: dict[str, dict[str, str]] = {}
        """Container names whose creation fails (a daemon refusing them)."""
        self.logs_text = "the init's log"
        self._ids = itertools.count(1)

    def _record(self, operation: str, subject: str) -> None:
        self.calls.append((operation, subject))

    def _name(self, container_id: str) -> str:
        found = self.containers.get(container_id)
        return found.name if found else container_id

    # images
    def prepared_image(
        self,
        platform: Platform,
        say: Callable[[str], None],
        *,
        registry_mirror: str = "",
        pull: str = "missing",
    ) -> tuple[str, bool]:
        self._record("prepared_image", platform.name)
        return f"sha256:prepared-{platform.name}", True

    def recipe_key(self, platform: Platform) -> str | None:
        return f"recipe-{platform.name}"

    def list_images(self, label: str) -> list[ImageInfo]:
        return []

    def commit_container(
        self, container_id: str, repository: str, tag: str, labels: Mapping[str, str]
    ) -> str:
        self._record("commit", self._name(container_id))
        return f"sha256:{tag}"

    # containers
    def create_container(self, spec: ContainerSpec, options: Mapping[str, object] | None = None) -> str:
        self._record("create", spec.name)
        if spec.name in self.fail_create:
            from pytest_infranode.errors import NodeError

            raise NodeError(f"the daemon refused {spec.name}")
        container_id = f"{next(self._ids):064x}"
        self.containers[container_id] = FakeContainer(container_id, spec.name, dict(spec.labels), spec.image)
        sysctls = options.get("sysctls") if options is not None else spec.sysctls
        self.sysctls_of[container_id] = dict(sysctls) if isinstance(sysctls, Mapping) else {}
        return container_id

    def create_claim(self, container_id: str, name: str, claim_labels: dict[str, str]) -> str:
        """As the daemon: one container per name (a second create of a name is refused)."""
        self._record("claim", self._name(container_id))
        kept = self.containers.get(container_id)
        if kept is None or any(c.name == name for c in self.containers.values()):
            return ""
        marker_id = f"{next(self._ids):064x}"
        self.containers[marker_id] = FakeContainer(marker_id, name, dict(claim_labels), kept.image)
        return marker_id

    def start_container(self, container_id: str) -> None:
        self._record("start", self._name(container_id))
        ipv6 = [k for k in self.sysctls_of.get(container_id, {}) if k.startswith("net.ipv6.")]
        if ipv6 and not self.kernel_ipv6:
            from dataclasses import replace

            from pytest_infranode.errors import KernelWithoutIPv6

            self.info = replace(self.info, kernel_ipv6=False)
            raise KernelWithoutIPv6(ipv6[0])
        self.containers[container_id].state = "running"

    def container_state(self, container_id: str) -> str:
        if self.state_answers:
            return _next(self.state_answers)
        found = self.containers.get(container_id)
        return found.state if found else "missing"

    def container_address(self, container_id: str) -> str:
        return "10.0.0.2"

    def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        on_output: OutputSink | None = None,
    ) -> ExecResult:
        if list(argv[:3]) == ["/bin/sh", "-c", BOOT_WAIT]:
            self.boot_rounds.append(int(argv[4]))
            return _next(self.boot_answers)
        self._record("exec", " ".join(argv))
        answer = next((a for program, a in self.exec_answers.items() if program in argv), None)
        if answer is None and self.answered_only:
            raise AssertionError(f"unexpected exec: {list(argv)}")
        result = answer or ExecResult(0, b"", b"")
        if on_output is not None:
            if result.stdout:
                on_output(result.stdout)
            return ExecResult(result.exit_status, b"", b"")  # streamed output is not kept
        return result

    def open_shell(self, container_id: str, argv: Sequence[str], *, user: str | None = None) -> ShellStream:
        raise NotImplementedError("the fake engine has no exec channel: nodes fall back to one exec each")

    def put_files(self, container_id: str, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        self._record("put_files", dest_dir)
        for name, (content, _mode) in files.items():
            self.containers[container_id].files[f"{dest_dir}/{name}"] = content

    def get_file(self, container_id: str, path: str) -> bytes:
        return self.containers[container_id].files[path]

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        return {}

    def logs(self, container_id: str, tail: int = 50) -> str:
        return self.logs_text

    def kill_container(self, container_id: str) -> None:
        self._record("kill", self._name(container_id))
        if container_id in self.containers:
            self.containers[container_id].state = "exited"

    def rename_container(self, container_id: str, name: str) -> None:
        self._record("rename", name)
        self.containers[container_id].name = name

    def remove_container(self, container_id: str) -> None:
        self._record("remove", self._name(container_id))
        self.containers.pop(container_id, None)

    def list_containers(self, label_filters: Sequence[str]) -> list[ContainerInfo]:
        return [
            ContainerInfo(c.id, c.name, dict(c.labels), c.state)
            for c in self.containers.values()
            if _matches(c.labels, label_filters)
        ]

    # networks
    def create_network(self, name: str, net_labels: Mapping[str, str]) -> str:
        self._record("create_network", name)
        self.networks[name] = dict(net_labels)
        return f"net-{name}"

    def remove_network(self, network_id: str) -> bool:
        self._record("remove_network", network_id)
        return self.networks.pop(network_id.removeprefix("net-"), None) is not None

    def list_networks(self, label_filters: Sequence[str]) -> list[NetworkInfo]:
        return [
            NetworkInfo(f"net-{name}", name, dict(net_labels))
            for name, net_labels in self.networks.items()
            if _matches(net_labels, label_filters)
        ]

    def close(self) -> None:
        self._record("close", "")

    def describe(self) -> str:
        return "a fake engine"

    def names(self) -> list[str]:
        """The containers left, by name."""
        return sorted(c.name for c in self.containers.values())
