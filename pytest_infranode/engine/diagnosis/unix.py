"""The verdict on a unix:// daemon socket (pure): missing, not a socket, not ours to open, stale."""

from __future__ import annotations

import errno
import os

from pytest_infranode.engine.diagnosis.ci import with_ci_hint
from pytest_infranode.engine.diagnosis.facts import SocketFacts
from pytest_infranode.engine.diagnosis.findings import Finding


def verdict_socket(facts: SocketFacts, source: str, ci: str) -> Finding:
    """Why a unix socket cannot be used (or ``ok``), from a stat and one connect attempt."""
    path = facts.path
    if not facts.exists:
        if source == "default socket":
            summary = (
                f"no Docker daemon: {path} does not exist and DOCKER_HOST/DOCKER_CONTEXT are unset "
                "(no rootless or Podman socket either)"
            )
            generic = (
                "install or start Docker (`sudo systemctl start docker`), or point DOCKER_HOST at a daemon"
            )
        else:
            summary = f"no Docker daemon socket at {path} (taken from {source})"
            generic = f"is the daemon running? is {source} right? start it, or correct {source}"
        return Finding(
            "connect",
            "fail",
            summary,
            (f"stat {path}: no such file",),
            with_ci_hint(generic, ci, "no-daemon"),
        )
    if not facts.is_socket:
        return Finding(
            "connect",
            "fail",
            f"{path} is not a socket (taken from {source})",
            (f"stat {path}: {facts.mode} {facts.owner}:{facts.group}",),
            f"point {source if source != 'default socket' else 'DOCKER_HOST'} at the daemon's socket",
        )
    evidence = (f"{path}: {facts.mode} {facts.owner}:{facts.group}",)
    if facts.connect_errno in (errno.EACCES, errno.EPERM):
        groups = ", ".join(facts.user_groups) or "none"
        proof = (*evidence, f"user {facts.user!r}, groups of this process: {groups}")
        if facts.listed_in_group and facts.gid not in facts.process_gids:
            return Finding(
                "connect",
                "fail",
                f"permission denied on {path}: you were added to {facts.group!r} but this session "
                "predates it",
                (
                    *proof,
                    f"/etc/group lists {facts.user!r} in {facts.group!r}; this process lacks gid {facts.gid}",
                ),
                with_ci_hint("log out and in again, or run `newgrp " + facts.group + "`", ci, "permission"),
                kind="permission",
            )
        return Finding(
            "connect",
            "fail",
            f"permission denied on {path}: user {facts.user!r} is not in group {facts.group!r}",
            proof,
            with_ci_hint(
                f"`sudo usermod -aG {facts.group} {facts.user}` and start a new login session; in a "
                f"container that mounts the socket: `--group-add $(stat -c %g {path})`",
                ci,
                "permission",
            ),
            kind="permission",
        )
    if facts.connect_errno is not None:
        return Finding(
            "connect",
            "fail",
            f"the socket {path} exists but no daemon listens (a stale socket: the daemon crashed or is "
            "restarting)",
            (*evidence, f"connect: {os.strerror(facts.connect_errno)}"),
            with_ci_hint("start the daemon again (`sudo systemctl restart docker`)", ci, "no-daemon"),
        )
    return Finding("connect", "ok", f"{path} accepts connections")
