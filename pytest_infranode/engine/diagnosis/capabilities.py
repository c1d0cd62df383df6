"""The verdicts on a daemon that answers (pure): the engine and its cgroups, what a systemd node
gets here and whether it boots, whether the daemon sees this machine's files, the platform
images, and why a throwaway container does not start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Literal

from pytest_infranode import sandbox
from pytest_infranode.engine import containers
from pytest_infranode.engine.diagnosis.ci import with_ci_hint
from pytest_infranode.engine.diagnosis.findings import Finding

if TYPE_CHECKING:
    from pytest_infranode.engine.api import DaemonInfo


def verdict_engine(info: DaemonInfo) -> list[Finding]:
    """The engine, its API version, cgroup set-up, rootless/Podman (pure)."""
    kind = "Podman" if info.podman else "Docker"
    found = [
        Finding(
            "engine",
            "ok",
            f"{kind} {info.server_version} (API {info.api_version}, OCI runtime {info.runtime}) on {info.os}",
        ),
        Finding(
            "cgroup",
            "ok",
            f"cgroup v{info.cgroup_version}, driver {info.cgroup_driver}; security options: "
            + (", ".join(info.security) or "none reported"),
        ),
        Finding("systemd", "info", "systemd nodes get " + systemd_recipe(info)),
    ]
    if "selinux" in info.security:
        found.append(
            Finding(
                "systemd",
                "info",
                "SELinux is enforced by the daemon: systemd nodes need `setsebool -P "
                "container_manage_cgroup on` on the host (not proven by this project)",
            )
        )
    if "userns" in info.security:
        found.append(
            Finding(
                "systemd",
                "info",
                "userns-remap: a node's root is an unprivileged user on the host; systemd nodes "
                "are not proven there by this project",
            )
        )
    if info.rootless:
        found.append(Finding("engine", "info", "rootless daemon: nodes cannot change kernel settings"))
    if info.rootless and info.cgroup_version == "1" and not info.podman:
        found.append(
            Finding(
                "systemd",
                "warn",
                "rootless Docker on cgroup v1: cgroup v1 cannot hand a cgroup tree to a user, so a "
                "systemd node has none it may write and is not expected to boot (not measured by "
                "this project; rootless on cgroup v2 is)",
                (),
                "boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1 on the kernel "
                "command line), or use the rootful daemon",
            )
        )
    if info.podman:
        found.append(
            Finding(
                "engine",
                "info",
                "Podman: images load as localhost/NAME and failed pulls show up as 'no such image'",
            )
        )
    return found


def systemd_recipe(info: DaemonInfo) -> str:
    """What a systemd node gets on this daemon, in words (pure; engine/containers.py decides)."""
    mode = containers.systemd_cgroup_mode(info)
    if mode == "podman-native":
        return "Podman's own systemd set-up (it mounts /run, /tmp and a writable cgroup tree), CAP_SYS_ADMIN"
    if mode == "private-rw" and info.rootless:
        cgroup = (
            "a private cgroup namespace whose cgroup2 PID 1 mounts afresh over Docker's read-only one "
            "(rootless Docker refuses the remount; the node's own subtree)"
        )
    elif mode == "private-rw":
        cgroup = (
            "a private cgroup namespace whose cgroup2 mount PID 1 remounts read-write (the node's own "
            "subtree)"
        )
    else:
        cgroup = "the host's cgroup namespace with /sys/fs/cgroup bound read-write"
    if mode == "private-rw":
        cgroup += " and hands every controller down to the units"
    security = containers.systemd_security_opt(info)
    confined = (
        "AppArmor unconfined (docker-default denies the mounts systemd needs)"
        if security
        else "no AppArmor profile to relax"
    )
    return f"{cgroup}, CAP_SYS_ADMIN, {confined}; seccomp stays the daemon's default"


def verdict_images(present: Sequence[str], wanted: Sequence[str]) -> Finding:
    """One line for the platform images: all there, or which ones a session would pull (pure)."""
    missing = [i for i in wanted if i not in present]
    if not missing:
        return Finding("images", "ok", f"all {len(wanted)} platform image(s) are on the daemon")
    return Finding(
        "images",
        "warn" if len(missing) == len(wanted) else "info",
        f"{len(present)} of {len(wanted)} platform images are on the daemon; the others are pulled at "
        "first use",
        (f"on the daemon: {', '.join(present) or 'none'}", f"missing: {', '.join(missing)}"),
        "without a registry, make them first (scripts/make-base-images.sh, or `docker load`)",
    )


def verdict_systemd(output: str, recipe: str) -> Finding:
    """The probe's ``cgroup=`` and ``sandbox=`` lines, as one finding (pure)."""
    said = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    verdict = sandbox.parse(said.get("sandbox", ""))
    evidence = tuple(line for line in output.splitlines() if line.strip())
    if said.get("cgroup") != "rw":
        return Finding(
            "systemd",
            "fail",
            "systemd nodes will not boot: their cgroup tree is read-only",
            evidence,
            "the daemon refused what systemd nodes get here (" + recipe + "); "
            "`infranode doctor --json` shows the security options; with AppArmor or SELinux "
            "see docs/systemd-nodes.md",
        )
    warned = sandbox.warning(verdict, "systemd nodes")
    if warned is not None:
        what, _, fix = warned.partition(" Fix: ")
        return Finding("systemd", "warn", what, evidence, fix)
    if verdict == "unknown":
        return Finding("systemd", "info", "systemd nodes boot; unit sandboxing could not be asked", evidence)
    return Finding(
        "systemd", "ok", "systemd nodes boot and can sandbox units (cgroups writable, mount namespaces)"
    )


def verdict_bind_mount(outcome: Literal["seen", "empty", "refused"], detail: str, ci: str) -> Finding:
    """Whether the daemon sees this machine's files (a marker file bind-mounted into a container)."""
    if outcome == "seen":
        return Finding("files", "ok", "the daemon sees this machine's files (a marker bind mount worked)")
    what = (
        "the daemon cannot see this machine's files: the marker file's path does not exist on its side"
        if outcome == "refused"
        else "the daemon mounted an empty directory instead of this machine's marker file"
    )
    return Finding(
        "files",
        "info",
        what + " (a remote daemon, docker-in-docker or a mounted socket)",
        (detail,) if detail else (),
        with_ci_hint(
            "nothing to do: infranode copies files through the Docker API, never bind mounts",
            ci,
            "files-not-visible",
        ),
    )


def _oci_runtime_named(text: str) -> str:
    """Which OCI runtime speaks in a daemon's error: each prefixes its own messages (pure)."""
    for runtime in ("crun", "runc"):
        if f"{runtime}:" in text or f"{runtime} create failed" in text:
            return runtime
    return "the OCI runtime"


def container_cause(text: str) -> str:
    """A short cause after "does not start", for the failures the doctor knows (pure).

    runc: "error setting rlimit type 7: operation not permitted"; crun: "setrlimit
    `RLIMIT_NOFILE`: Operation not permitted"; crun on a hybrid host: "cgroups in hybrid mode
    not supported, drop all controllers from cgroupv2".
    """
    if "hybrid mode not supported" in text:
        return ": crun refuses this hybrid cgroup host (its cgroup v2 hierarchy holds controllers)"
    if "rlimit" in text.lower():
        return f": {_oci_runtime_named(text)} may not raise the rlimits Podman asks for (no CAP_SYS_RESOURCE)"
    return ""


def container_fix(text: str) -> str:
    if "hybrid mode not supported" in text:
        return (
            'run Podman with runc here (runtime = "runc" under [engine] in containers.conf, or '
            "podman --runtime runc), or boot the host on cgroup v2 alone "
            "(kernel argument systemd.unified_cgroup_hierarchy=1)"
        )
    if "rlimit" in text.lower():
        return (
            "Podman cannot raise rlimits here (no CAP_SYS_RESOURCE): set default_ulimits in containers.conf "
            'to at most the hard limits (ulimit -Hn, -Hu), e.g. default_ulimits = ["nofile=N:N"]'
        )
    if "could not find bridge docker0" in text:
        return "the host's docker0 bridge is gone: restart dockerd"
    if "apply caps" in text:
        return "the daemon lacks a capability: do not run it with --privileged / --cap-add ALL"
    if "authorization denied" in text:
        return (
            "an authorization plugin refused the request (Bitbucket Pipelines: no --mount, no --privileged)"
        )
    return "see the daemon's log for this error"
