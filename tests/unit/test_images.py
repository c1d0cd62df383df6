from __future__ import annotations

import dataclasses

import pytest

from pytest_infranode.engine.images import prepared_tag
from pytest_infranode.engine.images import recipe_hash
from pytest_infranode.engine.images import render_dockerfile
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform

BASE_ID = "sha256:" + "1" * 64


@pytest.mark.parametrize("name", ["debian-12", "ubuntu-24.04", "rockylinux-9"])
def test_dockerfile_of_systemd_platform(name: str) -> None:
    platform = Catalog().get(name)
    dockerfile = render_dockerfile(platform)
    lines = dockerfile.splitlines()
    assert lines[0] == f"FROM {platform.image}"
    assert lines[1] == "RUN set -e; \\"
    assert platform.prepare
    for command in platform.prepare:
        assert command in dockerfile
    assert "ENV container=docker" in lines
    assert "STOPSIGNAL SIGRTMIN+3" in lines
    assert lines[-1] == 'CMD ["/sbin/init"]'
    assert dockerfile.endswith("\n")


def test_dockerfile_prepare_steps_are_chained_in_order() -> None:
    platform = Platform(
        name="t",
        image="example/t:1",
        family="debian",
        package_manager="apt",
        prepare=("echo one", "echo two", "echo three"),
        command=("/lib/systemd/systemd",),
    )
    dockerfile = render_dockerfile(platform)
    assert dockerfile == (
        "FROM example/t:1\n"
        "RUN set -e; \\\n"
        "    echo one && \\\n"
        "    echo two && \\\n"
        "    echo three\n"
        "ENV container=docker\n"
        "STOPSIGNAL SIGRTMIN+3\n"
        'CMD ["/lib/systemd/systemd"]\n'
    )


def test_dockerfile_of_openrc_platform() -> None:
    platform = Catalog().get("alpine-3.22")
    dockerfile = render_dockerfile(platform)
    assert dockerfile.startswith("FROM alpine:3.22\n")
    assert "apk add --no-cache openrc" in dockerfile
    assert "STOPSIGNAL" not in dockerfile
    assert "ENV container=docker" not in dockerfile
    assert dockerfile.splitlines()[-1] == 'CMD ["/sbin/init"]'


def test_dockerfile_without_prepare_or_command() -> None:
    platform = Platform(name="bare", image="busybox:1", family="busybox", package_manager="none", init="none")
    assert render_dockerfile(platform) == "FROM busybox:1\n"


def test_recipe_hash_is_stable() -> None:
    dockerfile = render_dockerfile(Catalog().get("debian-12"))
    key = recipe_hash(dockerfile, BASE_ID)
    assert key == recipe_hash(dockerfile, BASE_ID)
    assert len(key) == 16
    int(key, 16)


def test_recipe_hash_changes_with_base_image() -> None:
    dockerfile = render_dockerfile(Catalog().get("debian-12"))
    assert recipe_hash(dockerfile, BASE_ID) != recipe_hash(dockerfile, "sha256:" + "2" * 64)


def test_recipe_hash_changes_with_dockerfile() -> None:
    platform = Catalog().get("debian-12")
    changed = dataclasses.replace(platform, prepare=(*platform.prepare, "apt-get install -y curl"))
    assert recipe_hash(render_dockerfile(platform), BASE_ID) != recipe_hash(
        render_dockerfile(changed), BASE_ID
    )
    assert recipe_hash("FROM a\n", BASE_ID) != recipe_hash("FROM a\n\n", BASE_ID)


def test_recipe_hash_separates_its_parts() -> None:
    assert recipe_hash("bc", "a") != recipe_hash("c", "ab")


def test_prepared_tag() -> None:
    platform = Catalog().get("ubuntu-24.04")
    assert prepared_tag(platform, "0123456789abcdef") == "infranode/ubuntu-24.04:0123456789abcdef"
