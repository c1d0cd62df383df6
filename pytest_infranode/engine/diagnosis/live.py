"""The live checks on a daemon that answers: throwaway containers, labelled ``infranode.doctor``
and always removed, show that a container starts, that a systemd node's flags are accepted and
that a bind mount carries this machine's files. The Docker SDK is imported inside the checks."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from pytest_infranode import sandbox
from pytest_infranode.engine import containers
from pytest_infranode.engine.diagnosis.capabilities import container_cause
from pytest_infranode.engine.diagnosis.capabilities import container_fix
from pytest_infranode.engine.diagnosis.capabilities import systemd_recipe
from pytest_infranode.engine.diagnosis.capabilities import verdict_bind_mount
from pytest_infranode.engine.diagnosis.capabilities import verdict_engine
from pytest_infranode.engine.diagnosis.capabilities import verdict_images
from pytest_infranode.engine.diagnosis.capabilities import verdict_systemd
from pytest_infranode.engine.diagnosis.findings import Finding

if TYPE_CHECKING:
    from pytest_infranode.engine.api import DaemonInfo


DOCTOR_IMAGE = "debian:12"
DOCTOR_LABEL = "infranode.doctor"


def engine_findings(client: Any, info: DaemonInfo, *, images: Sequence[str], ci: str) -> list[Finding]:
    """Checks on a daemon that answers: a container starts, the daemon sees our files, images."""
    found = verdict_engine(info)
    have_image = _has_image(client, DOCTOR_IMAGE)
    if not have_image:
        found.append(
            Finding(
                "container",
                "warn",
                f"{DOCTOR_IMAGE} is not on the daemon: the container checks were skipped",
                fix=f"load it: `docker pull {DOCTOR_IMAGE}`, or `docker save | docker load` from a "
                "daemon that has it",
            )
        )
    else:
        found.append(_container_check(client))
        found.append(_systemd_check(client, info))
        found.append(_bind_mount_check(client, ci))
    if images:
        found.append(verdict_images([i for i in images if _has_image(client, i)], images))
    return found


def _has_image(client: Any, reference: str) -> bool:
    import docker.errors

    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def _run_throwaway(client: Any, command: list[str], mounts: list[Any] | None = None) -> tuple[int, str]:
    """Run a labelled container to its end; its exit status and output. Always removed."""
    container = client.containers.create(
        DOCTOR_IMAGE,
        command,
        labels={DOCTOR_LABEL: f"{os.uname().nodename}:{os.getpid()}"},
        mounts=mounts or [],
        network_mode="none",
    )
    try:
        container.start()
        status = container.wait(timeout=60)
        output = bytes(container.logs()).decode("utf-8", "replace").strip()
        return int(status.get("StatusCode", -1)), output
    finally:
        container.remove(force=True, v=True)


def _container_check(client: Any) -> Finding:
    import docker.errors

    started = time.monotonic()
    try:
        code, output = _run_throwaway(client, ["true"])
    except docker.errors.APIError as exc:
        return Finding(
            "container",
            "fail",
            "a throwaway container does not start" + container_cause(str(exc)),
            (doctor_error_text(exc),),
            container_fix(str(exc)),
            kind="other",
        )
    if code != 0:
        return Finding(
            "container", "fail", f"a throwaway container exited with {code}", (output,), kind="other"
        )
    return Finding(
        "container", "ok", f"a throwaway {DOCTOR_IMAGE} container ran ({time.monotonic() - started:.1f} s)"
    )


# Run in a throwaway container with a systemd node's flags (its PID 1 wrapper included), instead
# of systemd: may the node make its cgroups, and may systemd sandbox units there?
SYSTEMD_PROBE = (
    sandbox.PROBE
    + 'd=/sys/fs/cgroup; [ -d "$d/systemd" ] && d="$d/systemd"\n'
    + 'if mkdir "$d/infranode-doctor-$$" 2>/dev/null; then rmdir "$d/infranode-doctor-$$"; echo cgroup=rw; '
    + "else echo cgroup=ro; fi\n"
    + 'echo "sandbox=$(sandbox)"\n'
)


def _systemd_check(client: Any, info: DaemonInfo) -> Finding:
    """A container made as a systemd node is (engine/containers.py), running the probe above."""
    import docker.errors

    from pytest_infranode.engine.api import ContainerSpec

    if info.podman:
        return Finding(
            "systemd",
            "info",
            "Podman sets up a systemd node's cgroups itself when its command is an init: not probed",
        )
    spec = ContainerSpec(
        name=f"infranode-doctor-{os.getpid()}-{time.time_ns()}",
        image=DOCTOR_IMAGE,
        hostname="infranode-doctor",
        labels={DOCTOR_LABEL: f"{os.uname().nodename}:{os.getpid()}"},
        command=("/bin/sh", "-c", SYSTEMD_PROBE),
        init="systemd",
        tmpfs={"/run": "rw,nosuid,nodev,exec,mode=755", "/run/lock": "", "/tmp": ""},
        cap_add=("SYS_ADMIN",),
    )
    kwargs = containers.create_kwargs(spec, info)
    kwargs.update(tty=False, network_mode="none")
    kwargs.pop("stop_signal", None)
    try:
        container = client.containers.create(**kwargs)
    except docker.errors.APIError as exc:
        return Finding(
            "systemd", "fail", "a container with a systemd node's flags is refused", (doctor_error_text(exc),)
        )
    try:
        container.start()
        container.wait(timeout=60)
        output = bytes(container.logs()).decode("utf-8", "replace")
    except docker.errors.APIError as exc:
        return Finding(
            "systemd",
            "fail",
            "a container with a systemd node's flags does not start",
            (doctor_error_text(exc),),
        )
    finally:
        container.remove(force=True, v=True)
    return verdict_systemd(output, systemd_recipe(info))


def doctor_error_text(exc: BaseException) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def _bind_mount_check(client: Any, ci: str) -> Finding:
    import docker.errors
    import docker.types

    token = f"infranode-{os.getpid()}-{time.time_ns()}"
    with tempfile.TemporaryDirectory(prefix="infranode-doctor-") as tmp:
        marker = os.path.join(tmp, "marker")
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(token)
        os.chmod(tmp, 0o755)
        os.chmod(marker, 0o644)
        mount = docker.types.Mount("/infranode-marker", tmp, type="bind", read_only=True)
        try:
            _code, output = _run_throwaway(
                client, ["sh", "-c", "cat /infranode-marker/marker || true"], [mount]
            )
        except docker.errors.APIError as exc:
            text = doctor_error_text(exc)
            if "bind source path does not exist" in text or "not allowed" in text or "denied" in text:
                return verdict_bind_mount("refused", text, ci)
            return Finding("files", "warn", "the marker bind mount check failed", (text,), kind="other")
    return verdict_bind_mount("seen" if token in output else "empty", f"container saw {output[:80]!r}", ci)
