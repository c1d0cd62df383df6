"""Labels put on every Docker resource the plugin makes, and the session id. Pure."""

from __future__ import annotations

import os
import secrets
import time

from pytest_infranode.errors import SettingsError

PREFIX = "infranode."
SESSION = PREFIX + "session"
PLATFORM = PREFIX + "platform"
NODE = PREFIX + "node"
RECIPE = PREFIX + "recipe"
"""On prepared images: the hash of the recipe that made them."""
CONVERGE = PREFIX + "converge"
"""On converged images (``--infra-cache=converge``): the key hashing every input of the converge."""
CONVERGE_SCOPE = PREFIX + "converge.scope"
"""On converged images: ``platform/node/provisioner``, to find the previous one on a miss."""
CONVERGE_PARTS = PREFIX + "converge.parts"
"""On converged images: JSON ``{input: hash}``, to say which input changed on a miss."""
PID = PREFIX + "pid"
"""The test process that owns a resource, with the host it runs on (for the reaper)."""
CREATED = PREFIX + "created"
CLAIM = PREFIX + "claim"
"""On a claim marker (``claims.py``): the id of the kept node the marker's session holds."""


def new_session_id() -> str:
    """A short id unique enough for sessions sharing one daemon."""
    return f"{int(time.time()):x}{secrets.token_hex(4)}"


def owner() -> str:
    """``host:pid`` of this process, the value of :data:`PID`."""
    return f"{os.uname().nodename}:{os.getpid()}"


def node_labels(session_id: str, platform: str, node: str, owner_id: str | None = None) -> dict[str, str]:
    """The labels of a node container (and of any network or volume made for it).

    :param owner_id: the process that owns the session (an xdist controller for its workers);
        default: this process.
    """
    return {
        SESSION: session_id,
        PLATFORM: platform,
        NODE: node,
        PID: owner_id or owner(),
        CREATED: str(int(time.time())),
    }


def session_filter(session_id: str) -> dict[str, list[str]]:
    """A Docker ``filters`` value selecting every resource of one session."""
    return {"label": [f"{SESSION}={session_id}"]}


def check_user_labels(labels: dict[str, str]) -> None:
    """Refuse user labels inside our namespace: they would confuse cleanup."""
    bad = sorted(k for k in labels if k.startswith(PREFIX))
    if bad:
        raise SettingsError(
            f"labels {', '.join(bad)} use the reserved prefix {PREFIX!r}",
            fix="rename them; infranode.* labels are set by the plugin",
        )
