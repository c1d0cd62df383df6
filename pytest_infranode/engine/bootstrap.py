"""Base images without a registry: debootstrap on the runner, imported into the daemon.

For Debian and Ubuntu platforms (their ``bootstrap`` recipe names the suite and the apt
mirror). The root file system is made on this machine and streamed to the daemon through the
import API, so a remote daemon works too. Needs root and ``debootstrap`` on the runner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from pytest_infranode import labels
from pytest_infranode.errors import ImageError
from pytest_infranode.platforms import Bootstrap
from pytest_infranode.platforms import Platform

BOOTSTRAP_LABEL = labels.PREFIX + "bootstrap"
"""On bootstrapped base images: ``suite@mirror``."""


def debootstrap_argv(recipe: Bootstrap, target: str, mirror: str = "") -> list[str]:
    """The debootstrap command line for ``recipe`` into ``target``. Pure."""
    argv = ["debootstrap", f"--variant={recipe.variant}"]
    if recipe.include:
        argv.append("--include=" + ",".join(recipe.include))
    return [*argv, recipe.suite, target, mirror or recipe.mirror]


def unavailable(
    which: Callable[[str], str | None] = shutil.which, euid: Callable[[], int] = os.geteuid
) -> str | None:
    """Why debootstrap cannot run here, or None when it can."""
    if which("debootstrap") is None:
        return "debootstrap is not installed on this machine (apt-get install debootstrap)"
    if euid() != 0:
        return "debootstrap needs root on this machine"
    return None


def make_image(
    client: docker.DockerClient,
    platform: Platform,
    tag: str,
    *,
    say: Callable[[str], None],
    mirror: str = "",
) -> str:
    """Make ``tag`` from the platform's bootstrap recipe; return the image id.

    :raises ImageError: debootstrap or the import failed (with debootstrap's log tail).
    """
    recipe = platform.bootstrap
    if recipe is None:
        raise ImageError(
            f"platform {platform.name} has no debootstrap recipe",
            where=f"platform {platform.name} ({platform.source})",
            fix="only Debian and Ubuntu platforms can be bootstrapped; add `bootstrap: {suite: ...}` "
            "to a platform definition",
        )
    why_not = unavailable()
    if why_not:
        raise ImageError(
            f"cannot bootstrap {tag}: {why_not}",
            where=f"platform {platform.name}",
            fix="install debootstrap and run as root, or get the image from a registry",
        )
    source = mirror or recipe.mirror
    work = Path(tempfile.mkdtemp(prefix="infranode-bootstrap-"))
    root = work / "rootfs"
    log_path = work / "debootstrap.log"
    started = time.monotonic()
    try:
        say(f"{tag}: debootstrap {recipe.suite} from {source} (about 30 s)")
        with open(log_path, "wb") as log_file:
            done = subprocess.run(
                debootstrap_argv(recipe, str(root), source),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise ImageError(
                f"debootstrap of {recipe.suite} from {source} failed (exit status {done.returncode})",
                where=f"platform {platform.name}, image {tag}",
                fix="check that this machine reaches the mirror; set another one with "
                "`bootstrap: {mirror: ...}` or `infranode images bootstrap --mirror URL`",
                detail="--- debootstrap log (tail) ---\n" + tail,
            )
        say(f"{tag}: debootstrap done in {time.monotonic() - started:.0f} s; importing into the daemon")
        tarball = work / "rootfs.tar"
        packed = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if packed.returncode != 0:
            raise ImageError(
                f"packing the bootstrapped root file system of {tag} failed",
                where=f"platform {platform.name}, {work}",
                detail=packed.stderr.decode(errors="replace")[-2000:],
            )
        repository, _, version = tag.rpartition(":")
        if not repository or "/" in version:
            repository, version = tag, "latest"
        try:
            client.api.import_image_from_file(
                str(tarball),
                repository=repository,
                tag=version,
                changes=[
                    'CMD ["/bin/bash"]',
                    f'LABEL {BOOTSTRAP_LABEL}="{recipe.suite}@{source}"',
                    f'LABEL {labels.PLATFORM}="{platform.name}"',
                ],
            )
        except docker.errors.APIError as exc:
            raise ImageError(
                f"importing the bootstrapped {tag} into the daemon failed: {exc.explanation or exc}",
                where=f"platform {platform.name}",
            ) from exc
        image_id = str(client.images.get(tag).id)
        say(f"{tag}: made by debootstrap in {time.monotonic() - started:.0f} s ({image_id[7:19]})")
        return image_id
    finally:
        shutil.rmtree(work, ignore_errors=True)
