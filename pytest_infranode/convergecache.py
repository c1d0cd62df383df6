"""The converge cache (``--infra-cache=converge``): a converged node kept as an image.

After a successful converge the node's container is committed to an image labelled with a key
that hashes everything that can change the converge's result:

- the platform: its prepared-image recipe key (base image id + rendered recipe), the prepared
  image's id, and its container settings (init, command, env, capabilities, tmpfs);
- the provisioner: its name and version (``version`` attribute if it has one, else the version of
  the distribution that ships it, plus those of the distributions its ``tools`` names);
- its settings: ``ProvisionerConfig.options`` as canonical JSON;
- the node's own settings (short name, env, capabilities, ports, hostname, sysctls);
- the content of every file it reads: what the provisioner's optional ``inputs(config)`` method
  returns, else every option value naming an existing file or directory (relative to the
  configuration file's directory); see ``provisioners/base.py``.

A later session computes the key again; an image with that key is started instead of the
prepared image and the converge is skipped. Never used with ``secret_env`` (a secret would end
up in an image) or ``--infra-idempotence`` (which must converge).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import final

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners import base
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import has_secrets
from pytest_infranode.provisioners.base import tool_distributions
from pytest_infranode.settings import NodeConfig
from pytest_infranode.settings import ProvisionerConfig

KEY_VERSION = "1"
"""Bumped when what the key covers changes, so older converged images are not reused."""
RECIPE_OF = labels.PREFIX + "converge.recipe"
"""On converged images: the recipe key of the prepared image they were made from."""

_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".tox", ".venv"}


@final
@dataclass(frozen=True, slots=True)
class ConvergeKey:
    """The key of one node's converge, and the hashes it was made of (to explain a miss)."""

    key: str
    scope: str
    """``platform/node/provisioner``: converged images of one scope replace each other."""
    recipe: str
    parts: Mapping[str, str] = field(default_factory=dict)


def uncacheable(config: ProvisionerConfig, idempotence: bool) -> str | None:
    """Why this converge must not be cached, or None."""
    if has_secrets(config):
        return "the provisioner has secret_env (a secret could end up in the image)"
    if idempotence:
        return "--infra-idempotence converges every node twice"
    return None


def input_paths(provisioner: Provisioner, config: ProvisionerConfig) -> list[Path]:
    """Files and directories the converge reads (the provisioner's contract says which)."""
    return base.input_paths(provisioner, config)


def hash_path(path: Path) -> str:
    """sha256 of a file's content, or of a directory's tree (names, modes, contents)."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    if not path.exists():
        return "missing"
    for root, dirs, files in os.walk(path, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            file = Path(root, name)
            rel = file.relative_to(path).as_posix()
            digest.update(rel.encode() + b"\0" + oct(file.stat().st_mode & 0o777).encode() + b"\0")
            if file.is_file():
                digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def provisioner_version(provisioner: Provisioner) -> str:
    """The provisioner's own ``version``, else its distribution's (and its tool's, built-ins)."""
    own = getattr(provisioner, "version", None)
    if isinstance(own, str) and own:
        return own
    top = type(provisioner).__module__.split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top, [])
    version = ",".join(f"{d}={_dist_version(d)}" for d in sorted(set(dists))) or f"{top}=?"
    tools = [f"{t}={_dist_version(t)}" for t in tool_distributions(provisioner) if _dist_version(t)]
    return ";".join([version, *tools])


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def converge_key(
    *,
    platform: Platform,
    recipe: str,
    prepared_id: str,
    provisioner: Provisioner,
    config: ProvisionerConfig,
    node: NodeConfig,
) -> ConvergeKey:
    """The key of a converge. Reads the input files; pure otherwise."""
    scope = f"{platform.name}/{node.name}/{provisioner.name}"
    runtime = [
        platform.init,
        list(platform.command),
        dict(platform.env),
        list(platform.cap_add),
        list(platform.tmpfs),
        platform.privileged,
    ]
    parts: dict[str, str] = {
        "platform image": _h(f"{recipe}\0{prepared_id}"),
        "platform settings": _h(json.dumps(runtime, sort_keys=True, default=str)),
        "provisioner version": _h(f"{provisioner.name}\0{provisioner_version(provisioner)}"),
        "provisioner options": _h(json.dumps(dict(config.options), sort_keys=True, default=str)),
        "node settings": _h(
            json.dumps(
                [node.name, dict(node.env), list(node.capabilities), list(node.ports)]
                + ([node.hostname] if node.hostname else [])  # keys without one stay as they were
                + ([dict(node.sysctls)] if node.sysctls else []),
                sort_keys=True,
            )
        ),
    }
    for path in input_paths(provisioner, config):
        try:
            name = path.relative_to(config.base_dir.resolve()).as_posix()
        except ValueError:
            name = str(path)
        parts[f"file {name}"] = hash_path(path)[:16]
    digest = hashlib.sha256(f"{KEY_VERSION}\0{scope}\0".encode())
    digest.update(json.dumps(parts, sort_keys=True).encode())
    return ConvergeKey(digest.hexdigest()[:20], scope, recipe, parts)


def explain_miss(key: ConvergeKey, previous: Mapping[str, str] | None) -> str:
    """Why no image has ``key``: the inputs that differ from the last converged image. Pure."""
    if previous is None:
        return f"no image with key {key.key}"
    changed = sorted(
        name for name in set(key.parts) | set(previous) if key.parts.get(name) != previous.get(name)
    )
    if not changed:
        return f"no image with key {key.key}"
    return f"no image with key {key.key}; changed since the last one: {', '.join(changed)}"


def image_labels(key: ConvergeKey, platform_name: str) -> dict[str, str]:
    """The labels of a converged image; they override the node's own (session, recipe …)."""
    return {
        labels.CONVERGE: key.key,
        labels.CONVERGE_SCOPE: key.scope,
        labels.CONVERGE_PARTS: json.dumps(dict(key.parts), sort_keys=True),
        RECIPE_OF: key.recipe,
        labels.PLATFORM: platform_name,
        labels.RECIPE: "",  # else the prepared-image lookup would find this image
        labels.SESSION: "",
        labels.NODE: "",
        labels.PID: "",
        labels.CREATED: str(int(time.time())),
    }


def lookup(engine: Engine, key: ConvergeKey) -> tuple[str | None, str]:
    """``(image id, why)`` of the converged image with ``key``; ``(None, why not)`` on a miss."""
    found = engine.list_images(f"{labels.CONVERGE}={key.key}")
    if found:
        return found[0].id, f"image with key {key.key}"
    same_scope = sorted(
        engine.list_images(f"{labels.CONVERGE_SCOPE}={key.scope}"),
        key=lambda i: i.created,
    )
    previous: dict[str, str] | None = None
    if same_scope:
        try:
            previous = json.loads(same_scope[-1].labels.get(labels.CONVERGE_PARTS, "{}"))
        except ValueError:
            previous = None
    return None, explain_miss(key, previous)


def save(engine: Engine, container_id: str, key: ConvergeKey, platform_name: str) -> str:
    """Commit the converged node as the image of ``key``; return its id."""
    repository = f"infranode/{platform_name}-converged"
    return engine.commit_container(container_id, repository, key.key, image_labels(key, platform_name))


def stale_converged(images: Sequence[ImageInfo], current: Mapping[str, str | None]) -> list[ImageInfo]:
    """Converged images made from a prepared image that is no longer current, or replaced by a
    newer converged image of the same scope. Pure.

    :param current: platform name → its current recipe key (None: unknown).
    """
    newest: dict[str, int] = {}
    for image in images:
        scope = image.labels.get(labels.CONVERGE_SCOPE, "")
        newest[scope] = max(newest.get(scope, 0), image.created)
    stale = []
    for image in images:
        lab = image.labels
        platform, recipe = lab.get(labels.PLATFORM, ""), lab.get(RECIPE_OF, "")
        replaced = image.created < newest[lab.get(labels.CONVERGE_SCOPE, "")]
        if replaced or (current.get(platform) is not None and current.get(platform) != recipe):
            stale.append(image)
    return stale
