"""The engine: the only package that talks to Docker (through the Docker SDK, never the CLI)."""

from __future__ import annotations

import dataclasses
import io
import logging
import tarfile
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import final

import docker
import docker.errors

from pytest_infranode.engine import bootstrap as _bootstrap
from pytest_infranode.engine import daemon as _daemon
from pytest_infranode.engine import images as _images
from pytest_infranode.engine._translate import retrying
from pytest_infranode.engine._translate import translate
from pytest_infranode.engine.api import ContainerInfo
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.engine.api import NetworkInfo
from pytest_infranode.engine.api import OutputSink
from pytest_infranode.engine.attach import AttachedExec
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.engine.containers import missing_ipv6_sysctl
from pytest_infranode.engine.containers import parse_port_bindings
from pytest_infranode.engine.containers import runner_host
from pytest_infranode.engine.containers import tar_files
from pytest_infranode.errors import KernelWithoutIPv6
from pytest_infranode.errors import NodeError
from pytest_infranode.platforms import Platform

__all__ = ["Engine"]

log = logging.getLogger("pytest_infranode.engine")


def _attach_ends(stream: Any) -> list[Any]:
    """The HTTP response and socket under a streamed exec, to close once it has ended.

    docker-py's ``CancellableStream.close`` skips them when the stream ended by itself; the
    garbage collector then reports an unclosed socket (an error under ``-W error``).
    """
    response = getattr(getattr(getattr(stream, "_response", None), "raw", None), "_fp", None)
    fp = getattr(response, "fp", None)
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return [end for end in (response, sock) if end is not None]


def _close_stream(stream: Any) -> None:
    """``CancellableStream.close``, which docker-py refuses over ssh:// (paramiko: "Cancellable
    streams not supported for the SSH protocol"); there the response itself is closed."""
    try:
        stream.close()
    except docker.errors.DockerException:
        response = getattr(stream, "_response", None)
        if response is not None:
            response.close()


def _labels(raw: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw.get("Labels") or {}).items()}


def container_info(raw: Mapping[str, Any]) -> ContainerInfo:
    """A container of the containers API (``GET /containers/json``) as our value. Pure."""
    names = raw.get("Names")
    first = str(names[0]).lstrip("/") if isinstance(names, list) and names else ""
    container_id = str(raw["Id"])
    return ContainerInfo(container_id, first or container_id[:12], _labels(raw), str(raw.get("State") or ""))


def image_info(raw: Mapping[str, Any]) -> ImageInfo:
    """An image of the images API (``GET /images/json``) as our value. Pure."""
    size = raw.get("Size")
    return ImageInfo(
        id=str(raw["Id"]),
        repo_tags=tuple(str(t) for t in raw.get("RepoTags") or ()),
        labels=_labels(raw),
        size=size if isinstance(size, int) else None,
        created=int(raw.get("Created") or 0),
    )


def network_info(raw: Mapping[str, Any]) -> NetworkInfo:
    """A network of the networks API (``GET /networks``) as our value. Pure."""
    return NetworkInfo(str(raw["Id"]), str(raw.get("Name", raw["Id"])), _labels(raw))


@final
class Engine:
    """A connected Docker daemon and the operations the plugin performs on it."""

    def __init__(self, client: docker.DockerClient, info: DaemonInfo) -> None:
        self._client = client
        self.info = info

    @classmethod
    def connect(cls, docker_host: str | None = None, *, wait: float | None = None) -> Engine:
        """Find and connect to the daemon (``wait``: see ``daemon.connect``; None = the default).

        :raises DaemonError: saying what is wrong and how to fix it.
        """
        client, info = _daemon.connect(docker_host, wait=wait)
        return cls(client, info)

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        i = self.info
        kind = "Podman" if i.podman else "Docker"
        return (
            f"{kind} {i.server_version} (API {i.api_version}, cgroup v{i.cgroup_version}, {i.runtime}) "
            f"via {i.endpoint} [{i.source}]"
        )

    def _translate(self, action: str, where: str) -> Any:
        return translate(action, where=where, endpoint=self.info.endpoint)

    # images
    def prepared_image(
        self,
        platform: Platform,
        say: Callable[[str], None],
        *,
        registry_mirror: str = "",
        pull: str = "missing",
    ) -> tuple[str, bool]:
        """The platform's prepared image id, built once per recipe; and whether it was cached."""
        with self._translate("preparing the image", f"platform {platform.name}"):
            return _images.ensure_prepared(
                self._client, platform, self.info.endpoint, say, mirror=registry_mirror, pull_policy=pull
            )

    def bootstrap_image(
        self, platform: Platform, tag: str, say: Callable[[str], None], *, mirror: str = ""
    ) -> str:
        """Make ``tag`` with debootstrap on this machine from the platform's recipe."""
        with self._translate("bootstrapping the image", f"platform {platform.name}"):
            return _bootstrap.make_image(self._client, platform, tag, say=say, mirror=mirror)

    def recipe_key(self, platform: Platform) -> str | None:
        """The recipe key of the platform's prepared image as it would be built now (no pull)."""
        with self._translate("reading the base image", f"platform {platform.name}"):
            return _images.current_key(self._client, platform)

    def list_images(self, label: str) -> list[ImageInfo]:
        """Images carrying ``label`` (``key`` or ``key=value``)."""
        with self._translate("listing images", "images"):
            found = self._client.api.images(filters={"label": label})
        return [image_info(raw) for raw in found]

    def remove_image(self, image_id: str) -> None:
        with self._translate("removing an image", f"image {image_id[:19]}"):
            self._client.api.remove_image(image_id)

    def commit_container(
        self, container_id: str, repository: str, tag: str, image_labels: Mapping[str, str]
    ) -> str:
        """Save the container's file system as an image (labels merged over the container's)."""
        with self._translate("saving the node as an image", f"container {container_id[:12]}"):
            image = self._client.containers.get(container_id).commit(
                repository=repository, tag=tag, conf={"Labels": dict(image_labels)}
            )
        return str(image.id)

    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or None (nothing is pulled)."""
        try:
            return str(self._client.images.get(reference).id)
        except docker.errors.ImageNotFound:
            return None

    def has_image(self, reference: str) -> bool:
        """Whether the daemon has ``reference`` locally (nothing is pulled)."""
        try:
            self._client.images.get(reference)
        except docker.errors.ImageNotFound:
            return False
        return True

    # containers
    def create_container(self, spec: ContainerSpec, options: Mapping[str, object] | None = None) -> str:
        kwargs = dict(options) if options is not None else create_kwargs(spec, self.info)
        with self._translate("creating the node", f"node {spec.name}"):
            container = retrying(self._client.containers.create, **kwargs)
        return str(container.id)

    def start_container(self, container_id: str) -> None:
        """Start a created container.

        :raises KernelWithoutIPv6: the daemon's kernel has no IPv6 for a setting the node asked
            for; from then on :attr:`info` says so, and new nodes leave the IPv6 defaults out.
        """
        where = f"container {container_id[:12]}"
        try:
            with self._translate("starting the node", where):
                retrying(self._client.api.start, container_id)
        except NodeError as exc:
            key = missing_ipv6_sysctl(exc.what)
            if key is None:
                raise
            self.info = dataclasses.replace(self.info, kernel_ipv6=False)
            raise KernelWithoutIPv6(key, where=f"{where} on {self.info.endpoint}") from exc

    def container_state(self, container_id: str) -> str:
        """``running``, ``exited`` … or ``missing``."""
        try:
            data = self._client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return "missing"
        return str(data.get("State", {}).get("Status", "unknown"))

    def container_address(self, container_id: str) -> str:
        """The node's IP address on its first network ("" when it has none)."""
        with self._translate("inspecting the node", f"container {container_id[:12]}"):
            data = self._client.api.inspect_container(container_id)
        networks = data.get("NetworkSettings", {}).get("Networks", {}) or {}
        for net in networks.values():
            if net.get("IPAddress"):
                return str(net["IPAddress"])
        return ""

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
        """Run ``argv`` in the container; with ``on_output``, stream output as it comes, and
        only there: the result's stdout and stderr are then empty (a converge may print
        gigabytes; whoever streams keeps what it needs)."""
        api = self._client.api
        with self._translate("running a command", f"container {container_id[:12]}"):
            exec_id = api.exec_create(
                container_id,
                list(argv),
                stdout=True,
                stderr=True,
                environment=dict(env) if env else None,
                workdir=workdir,
                user=user or "",
            )["Id"]
            out: list[bytes] = []
            err: list[bytes] = []
            if on_output is None:
                # docker-py closes the response itself only on this non-streaming path.
                o, e = api.exec_start(exec_id, demux=True)
                out.append(o or b"")
                err.append(e or b"")
            else:
                chunks = api.exec_start(exec_id, stream=True, demux=True)
                ends = _attach_ends(chunks)
                try:
                    for o, e in chunks:
                        for data in (o, e):
                            if data:
                                on_output(data)
                finally:
                    _close_stream(chunks)
                    for end in ends:
                        end.close()
            code = api.exec_inspect(exec_id).get("ExitCode")
        return ExecResult(-1 if code is None else int(code), b"".join(out), b"".join(err))

    def open_shell(self, container_id: str, argv: Sequence[str], *, user: str | None = None) -> AttachedExec:
        """Start ``argv`` in the container (as ``user``) with stdin attached, for the exec channel."""
        api = self._client.api
        with self._translate("opening a shell", f"container {container_id[:12]}"):
            exec_id = api.exec_create(
                container_id, list(argv), stdin=True, stdout=True, stderr=True, tty=False, user=user or ""
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        return AttachedExec(api, exec_id, sock)

    def put_files(self, container_id: str, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        """Copy ``name -> (content, mode)`` into ``dest_dir`` through the archive API."""
        self.exec(container_id, ["mkdir", "-p", dest_dir])
        with self._translate("copying files in", f"container {container_id[:12]}:{dest_dir}"):
            ok = self._client.api.put_archive(container_id, dest_dir, tar_files(files))
        if not ok:  # pragma: no cover - the API raises instead on every daemon we know
            raise RuntimeError("put_archive refused")

    def get_file(self, container_id: str, path: str) -> bytes:
        """The content of one regular file in the container, through the archive API."""
        where = f"container {container_id[:12]}:{path}"
        with self._translate("copying a file out", where):
            stream, _stat = self._client.api.get_archive(container_id, path)
            data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            extracted = tar.extractfile(member) if member is not None else None
            if extracted is None:
                raise NodeError(
                    f"{path} is not a regular file", where=where, fix="name a file, not a directory"
                )
            return extracted.read()

    def published_ports(self, container_id: str) -> dict[int, tuple[str, int]]:
        """``{container port: (host, port)}`` reachable from the test runner."""
        with self._translate("inspecting the node", f"container {container_id[:12]}"):
            data = self._client.api.inspect_container(container_id)
        ports = (data.get("NetworkSettings") or {}).get("Ports")
        return parse_port_bindings(ports, runner_host(self.info.endpoint))

    # networks
    def create_network(self, name: str, net_labels: Mapping[str, str]) -> str:
        """A user-defined bridge network, on which nodes reach each other by name."""
        with self._translate("creating the network", f"network {name}"):
            found = retrying(self._client.api.create_network, name, driver="bridge", labels=dict(net_labels))
        return str(found["Id"])

    def remove_network(self, network_id: str) -> bool:
        """Remove a network; a missing one is not an error.

        :return: False when a container (a kept node) still uses it, which leaves it in place.
        """
        try:
            retrying(self._client.api.remove_network, network_id)
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:
            if "active endpoints" in str(exc):
                return False
            raise
        return True

    def list_networks(self, label_filters: Sequence[str]) -> list[NetworkInfo]:
        """Networks carrying all the given ``key=value`` labels."""
        with self._translate("listing networks", "cleanup"):
            found = self._client.api.networks(filters={"label": list(label_filters)})
        return [network_info(raw) for raw in found]

    def logs(self, container_id: str, tail: int = 50) -> str:
        try:
            data = self._client.api.logs(container_id, tail=tail)
        except docker.errors.APIError:
            return "(no logs: the container is gone)"
        return bytes(data).decode("utf-8", "replace")

    def rename_container(self, container_id: str, name: str) -> None:
        with self._translate("renaming the node", f"container {container_id[:12]}"):
            self._client.api.rename(container_id, name)

    def kill_container(self, container_id: str) -> None:
        """Stop the node at once (used when a converge runs past its timeout)."""
        try:
            self._client.api.kill(container_id)
        except docker.errors.APIError:
            return

    def remove_container(self, container_id: str) -> None:
        """Remove the container and its anonymous volumes; a missing one is not an error."""
        try:
            retrying(self._client.api.remove_container, container_id, force=True, v=True)
        except docker.errors.NotFound:
            return

    def create_claim(self, container_id: str, name: str, claim_labels: dict[str, str]) -> str:
        """Create the claim marker ``name`` on ``container_id`` (see ``claims.py``), from the
        container's own image, never started. Returns the marker's id; "" when the name is
        taken (409: another session holds the claim) or the container is gone."""
        with self._translate("claiming the kept node", f"container {container_id[:12]}"):
            try:
                image = self._client.api.inspect_container(container_id)["Image"]
            except docker.errors.NotFound:
                return ""
            try:
                made = self._client.api.create_container(
                    image,
                    command=["true"],
                    name=name,
                    labels=claim_labels,
                    network_disabled=True,
                    host_config=self._client.api.create_host_config(network_mode="none"),
                )
            except docker.errors.APIError as exc:
                if exc.response is not None and exc.response.status_code == 409:
                    return ""
                raise
        return str(made["Id"])

    def list_containers(self, label_filters: Sequence[str]) -> list[ContainerInfo]:
        """Containers (running or not) carrying all the given ``key=value`` labels."""
        with self._translate("listing containers", "cleanup"):
            found = self._client.api.containers(all=True, filters={"label": list(label_filters)})
        return [container_info(raw) for raw in found]
