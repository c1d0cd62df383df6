from __future__ import annotations

import dataclasses
from typing import Any
from typing import cast

import docker.errors
import pytest

from pytest_infranode.engine import bootstrap as _bootstrap
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.engine.bootstrap import debootstrap_argv
from pytest_infranode.engine.images import PullFailed
from pytest_infranode.engine.images import base_image_id
from pytest_infranode.engine.images import is_prepared
from pytest_infranode.engine.images import mirrored
from pytest_infranode.engine.images import prepared_tag
from pytest_infranode.engine.images import pull
from pytest_infranode.engine.images import pull_problem
from pytest_infranode.engine.images import recipe_hash
from pytest_infranode.engine.images import render_dockerfile
from pytest_infranode.engine.images import stale_images
from pytest_infranode.errors import ImageError
from pytest_infranode.platforms import Bootstrap
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


@pytest.mark.parametrize(
    ("reference", "mirror", "expected"),
    [
        ("debian:12", "", "debian:12"),
        ("debian:12", "mirror.gcr.io", "mirror.gcr.io/library/debian:12"),
        ("debian:12", "registry.corp:5000/hub/", "registry.corp:5000/hub/library/debian:12"),
        ("rockylinux/rockylinux:9", "mirror.gcr.io", "mirror.gcr.io/rockylinux/rockylinux:9"),
        ("docker.io/library/alpine:3.22", "mirror.gcr.io", "mirror.gcr.io/library/alpine:3.22"),
        ("quay.io/centos/centos:stream9", "mirror.gcr.io", "quay.io/centos/centos:stream9"),
        ("localhost:5000/x:1", "mirror.gcr.io", "localhost:5000/x:1"),
    ],
)
def test_mirrored(reference: str, mirror: str, expected: str) -> None:
    assert mirrored(reference, mirror) == expected


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (
            'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on '
            "10.255.255.53:53: no such host",
            "dns",
        ),
        ('Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', "refused"),
        ("manifest for debian:99 not found: manifest unknown: manifest unknown", "not-found"),
        (
            "pull access denied for nope/nope, repository does not exist or may require 'docker login'",
            "not-found",
        ),
        ("toomanyrequests: You have reached your pull rate limit.", "rate-limited"),
        ('Head "https://r/v2/x/manifests/1": unauthorized: authentication required', "auth"),
        ("received unexpected HTTP status: 503 Service Unavailable", "transient"),
        ("net/http: TLS handshake timeout", "transient"),
        ("something else entirely", "other"),
    ],
)
def test_pull_problem(message: str, problem: str) -> None:
    assert pull_problem(message) == problem


class FakeImage:
    def __init__(self, image_id: str) -> None:
        self.id = image_id
        self.tags: list[tuple[str, str]] = []

    def tag(self, repository: str, tag: str) -> None:
        self.tags.append((repository, tag))


class FakeImages:
    def __init__(self, present: dict[str, str], pull_errors: list[str]) -> None:
        self.present = present
        self.pull_errors = pull_errors
        self.pulls: list[str] = []
        self.pulled: FakeImage | None = None

    def get(self, reference: str) -> FakeImage:
        if reference not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {reference}")
        return FakeImage(self.present[reference])

    def pull(self, repository: str, tag: str) -> FakeImage:
        self.pulls.append(f"{repository}:{tag}")
        if self.pull_errors:
            message = self.pull_errors.pop(0)
            raise docker.errors.APIError("500 Server Error", explanation=message)
        self.pulled = FakeImage("sha256:pulled")
        return self.pulled


class FakeClient:
    def __init__(self, present: dict[str, str] | None = None, pull_errors: list[str] | None = None) -> None:
        self.images = FakeImages(present or {}, pull_errors or [])


DNS = 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host'


def _base(client: FakeClient, platform: Platform, said: list[str], **kwargs: str) -> str:
    return base_image_id(cast(Any, client), platform, "unix:///var/run/docker.sock", said.append, **kwargs)


def test_resolution_uses_the_image_on_the_daemon() -> None:
    client = FakeClient({"debian:12": "sha256:local"})
    said: list[str] = []
    assert _base(client, Catalog().get("debian-12"), said) == "sha256:local"
    assert client.images.pulls == []


def test_resolution_pulls_through_the_mirror_and_tags_the_original_name() -> None:
    client = FakeClient()
    said: list[str] = []
    assert _base(client, Catalog().get("debian-12"), said, mirror="mirror.local:5000") == "sha256:pulled"
    assert client.images.pulls == ["mirror.local:5000/library/debian:12"]
    assert client.images.pulled is not None
    assert client.images.pulled.tags == [("debian", "12")]
    assert any("registry mirror mirror.local:5000" in line for line in said)


def test_pull_always_skips_the_local_image() -> None:
    client = FakeClient({"debian:12": "sha256:local"})
    assert _base(client, Catalog().get("debian-12"), [], pull_policy="always") == "sha256:pulled"


def test_dns_failure_is_not_retried_and_every_step_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bootstrap, "unavailable", lambda: "debootstrap is not installed on this machine")
    client = FakeClient(pull_errors=[DNS])
    said: list[str] = []
    with pytest.raises(ImageError) as excinfo:
        _base(client, Catalog().get("debian-12"), said)
    assert client.images.pulls == ["debian:12"]
    text = str(excinfo.value)
    assert text.splitlines()[0] == "no way to get image debian:12 for platform debian-12"
    assert "daemon unix:///var/run/docker.sock" in text
    assert "the registry's host name does not resolve" in text
    assert "Dockerfile: the platform has none" in text
    assert "bootstrap: debootstrap is not installed" in text
    assert "registry_mirror:" in text
    assert "no such host" in text
    assert said[0] == "debian-12: debian:12 is not on the daemon"


def test_a_platform_without_other_sources_fails_on_the_pull() -> None:
    client = FakeClient(pull_errors=["manifest unknown"])
    with pytest.raises(ImageError) as excinfo:
        _base(client, Catalog().get("rockylinux-9"), [])
    assert "the registry has no such image or tag (404)" in str(excinfo.value)
    assert "bootstrap: the platform has no debootstrap recipe" in str(excinfo.value)


def test_pull_never_goes_to_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    monkeypatch.setattr(_bootstrap, "unavailable", lambda: None)

    def make_image(client: object, platform: Platform, tag: str, *, say: object) -> str:
        made.append(tag)
        return "sha256:boot"

    monkeypatch.setattr(_bootstrap, "make_image", make_image)
    client = FakeClient()
    said: list[str] = []
    assert _base(client, Catalog().get("debian-13"), said, pull_policy="never") == "sha256:boot"
    assert made == ["debian:13"]
    assert client.images.pulls == []
    assert any("debootstrap from http://deb.debian.org/debian" in line for line in said)


@pytest.mark.parametrize("first", ["toomanyrequests: slow down", "503 Service Unavailable", "i/o timeout"])
def test_pull_retries_429_5xx_and_timeouts(first: str) -> None:
    client = FakeClient(pull_errors=[first, first])
    naps: list[float] = []
    said: list[str] = []
    image = pull(cast(Any, client), "debian:12", mirror="", endpoint="e", say=said.append, sleep=naps.append)
    assert image == "sha256:pulled"
    assert len(client.images.pulls) == 3
    assert len(naps) == 2
    assert naps[0] <= naps[1]
    assert sum("retrying" in line for line in said) == 2


def test_pull_gives_up_after_its_attempts_in_plain_words() -> None:
    client = FakeClient(pull_errors=["toomanyrequests: slow down"] * 10)
    with pytest.raises(PullFailed) as excinfo:
        pull(
            cast(Any, client), "debian:12", mirror="", endpoint="e", say=lambda _: None, sleep=lambda _: None
        )
    assert len(client.images.pulls) == 4
    assert excinfo.value.problem == "rate-limited"
    assert "rate-limited this machine (429 Too Many Requests)" in str(excinfo.value)


def test_packages_are_part_of_the_recipe() -> None:
    platform = dataclasses.replace(Catalog().get("debian-12"), packages=("curl", "git"))
    dockerfile = render_dockerfile(platform)
    assert "apt-get install -y --no-install-recommends curl git" in dockerfile
    assert recipe_hash(dockerfile, BASE_ID) != recipe_hash(
        render_dockerfile(Catalog().get("debian-12")), BASE_ID
    )


def test_debootstrap_argv() -> None:
    recipe = Bootstrap("bookworm", include=("ca-certificates",))
    assert debootstrap_argv(recipe, "/tmp/r") == [
        "debootstrap",
        "--variant=minbase",
        "--include=ca-certificates",
        "bookworm",
        "/tmp/r",
        "http://deb.debian.org/debian",
    ]
    assert debootstrap_argv(Bootstrap("noble", "http://a/ubuntu"), "/r", "http://m/ubuntu")[-1] == (
        "http://m/ubuntu"
    )


def test_bootstrap_unavailable_reasons() -> None:
    assert "not installed" in str(_bootstrap.unavailable(which=lambda _: None, euid=lambda: 0))
    assert "needs root" in str(
        _bootstrap.unavailable(which=lambda _: "/usr/sbin/debootstrap", euid=lambda: 1000)
    )
    assert _bootstrap.unavailable(which=lambda _: "/usr/sbin/debootstrap", euid=lambda: 0) is None


def _img(platform: str, key: str, tags: tuple[str, ...] | None = None) -> ImageInfo:
    return ImageInfo(
        id=f"sha256:{platform}-{key}",
        repo_tags=tags if tags is not None else (f"infranode/{platform}:{key}",),
        labels={"infranode.platform": platform, "infranode.recipe": key},
        size=None,
        created=0,
    )


def test_stale_images() -> None:
    images = [
        _img("debian-12", "aaaa"),
        _img("debian-12", "bbbb"),
        _img("debian-13", "cccc"),
        _img("debian-13", "cccc", ("<none>:<none>",)),
        _img("gone-1", "dddd"),
        ImageInfo("sha256:other", (), {"infranode.platform": "x"}, None, 0),
    ]
    stale = stale_images(images, {"debian-12": "bbbb", "debian-13": None})
    assert [i.id for i in stale] == [
        "sha256:debian-12-aaaa",
        "sha256:debian-13-cccc",
        "sha256:gone-1-dddd",
    ]
    assert stale[1].repo_tags == ("<none>:<none>",)


def test_an_image_committed_from_a_node_is_not_a_prepared_image() -> None:
    # `docker commit` of a node keeps the node's labels, recipe and platform included.
    committed = _img("debian-12", "aaaa", ("probe/look-inside:1",))
    assert not is_prepared(committed)
    assert is_prepared(_img("debian-12", "aaaa"))
    assert is_prepared(_img("debian-12", "aaaa", ("<none>:<none>",)))  # an older build, tag moved on
    assert is_prepared(_img("debian-12", "aaaa", ("infranode/debian-12:aaaa", "mine:1")))
    assert not is_prepared(ImageInfo("sha256:x", (), {"infranode.platform": "debian-12"}, None, 0))


def test_recipe_key_changes_with_packages_only_through_the_dockerfile() -> None:
    platform = Catalog().get("debian-12")
    changed = dataclasses.replace(platform, env={"A": "1"}, cap_add=("NET_ADMIN",))
    assert render_dockerfile(changed) == render_dockerfile(platform)
