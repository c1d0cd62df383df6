"""Image supply: the platform's base image, and the prepared "whole machine" image built on it.

The prepared image is found again by a label holding the hash of its recipe (the rendered
Dockerfile and the base image's id), so a later session does not rebuild it, and a changed
recipe or base image makes a new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shlex
import tarfile
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests.exceptions

from pytest_infranode import labels
from pytest_infranode.engine._translate import retrying
from pytest_infranode.errors import ImageError
from pytest_infranode.platforms import Platform

log = logging.getLogger("pytest_infranode.engine")

RECIPE_VERSION = "1"
"""Bumped when the way prepared images are made changes, so old ones are not reused."""


def render_dockerfile(platform: Platform) -> str:
    """The Dockerfile of a platform's prepared image. Pure."""
    lines = [f"FROM {platform.image}"]
    if platform.prepare:
        script = " && \\\n    ".join(platform.prepare)
        lines.append(f"RUN set -e; \\\n    {script}")
    if platform.init == "systemd":
        lines.append("ENV container=docker")
        lines.append("STOPSIGNAL SIGRTMIN+3")
    if platform.command:
        lines.append("CMD " + json.dumps(list(platform.command)))
    return "\n".join(lines) + "\n"


def recipe_hash(dockerfile: str, base_image_id: str) -> str:
    """The cache key of a prepared image. Pure."""
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, base_image_id, dockerfile):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def prepared_tag(platform: Platform, key: str) -> str:
    return f"infranode/{platform.name}:{key}"


def _context_tar(dockerfile: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def base_image_id(
    client: docker.DockerClient, platform: Platform, endpoint: str, say: Callable[[str], None]
) -> str:
    """The id of the platform's base image: present on the daemon, else pulled."""
    try:
        return str(client.images.get(platform.image).id)
    except docker.errors.ImageNotFound:
        pass
    say(f"{platform.image}: not on the daemon, pulling")
    try:
        image = retrying(client.images.pull, platform.image)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        raise ImageError(
            f"image {platform.image} is not on the daemon and could not be pulled: {reason}",
            where=f"platform {platform.name}, daemon {endpoint}",
            fix=(
                "make the image available to the daemon: `docker pull "
                f"{shlex.quote(platform.image)}` where a registry is reachable, `docker load`, "
                "or a local build (air-gapped Debian: `scripts/make-base-images.sh`)"
            ),
        ) from exc
    # Podman may swallow a failed pull and return nothing usable; check again.
    if isinstance(image, list):
        image = image[0] if image else None
    if image is None:
        raise ImageError(f"pulling {platform.image} returned no image", where=endpoint)
    return str(image.id)


def find_prepared(client: docker.DockerClient, key: str) -> str | None:
    found = client.images.list(filters={"label": f"{labels.RECIPE}={key}"})
    return str(found[0].id) if found else None


def ensure_prepared(
    client: docker.DockerClient,
    platform: Platform,
    endpoint: str,
    say: Callable[[str], None],
) -> tuple[str, bool]:
    """The prepared image of ``platform``: ``(image id, True if it came from the cache)``."""
    base_id = base_image_id(client, platform, endpoint, say)
    dockerfile = render_dockerfile(platform)
    key = recipe_hash(dockerfile, base_id)
    cached = find_prepared(client, key)
    if cached:
        say(f"{platform.name}: prepared image {key} found (cache hit)")
        return cached, True
    tag = prepared_tag(platform, key)
    say(f"{platform.name}: building the prepared image {tag} (once per recipe)")
    output: list[str] = []
    image_id = ""
    try:
        stream: Any = client.api.build(
            fileobj=_context_tar(dockerfile),
            custom_context=True,
            tag=tag,
            labels={labels.RECIPE: key, labels.PLATFORM: platform.name},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                output.append(str(chunk["stream"]))
            if "error" in chunk:
                raise ImageError(
                    f"building the prepared image of {platform.name} failed: {chunk['error'].strip()}",
                    where=f"platform {platform.name}, daemon {endpoint}",
                    fix="check that the node can reach its package mirror; the build log is below",
                    detail="".join(output)[-3000:],
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = str(chunk["aux"]["ID"])
    except docker.errors.APIError as exc:
        raise ImageError(
            f"building the prepared image of {platform.name} failed: {exc.explanation or exc}",
            where=f"platform {platform.name}, daemon {endpoint}",
            detail="".join(output)[-3000:],
        ) from exc
    return image_id or str(client.images.get(tag).id), False
