"""A pull error reported inside the progress stream (Podman's way) is raised with its words."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from typing import cast

import pytest

from pytest_infranode.engine import images
from pytest_infranode.errors import ImageError

PODMAN_DNS = (
    "initializing source docker://registry.invalid/ghost:1: pinging container registry registry.invalid: "
    'Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid on 10.0.0.53:53: no such host'
)


class StreamApi:
    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = lines
        self.calls: list[tuple[str, str]] = []

    def pull(self, repo: str, *, tag: str, stream: bool, decode: bool) -> Iterator[dict[str, Any]]:
        assert stream
        assert decode
        self.calls.append((repo, tag))
        yield from self.lines


class Img:
    id = "sha256:abc"


class Images:
    def __init__(self) -> None:
        self.got: list[str] = []

    def get(self, ref: str) -> Img:
        self.got.append(ref)
        return Img()


class Client:
    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.api = StreamApi(lines)
        self.images = Images()


def _pull(client: Client) -> str:
    return images.pull(
        cast(Any, client),
        "registry.invalid/ghost:1",
        mirror="",
        endpoint="unix:///p.sock",
        say=lambda _: None,
    )


def test_error_in_the_stream_is_the_reason() -> None:
    client = Client([{"progressDetail": {}, "errorDetail": {"message": PODMAN_DNS}, "error": PODMAN_DNS}])
    with pytest.raises(ImageError) as info:
        _pull(client)
    assert "the registry's host name does not resolve" in info.value.what
    assert client.images.got == []  # the misleading "No such image" is never asked for
    assert client.api.calls == [("registry.invalid/ghost", "1")]


def test_clean_stream_returns_the_image() -> None:
    client = Client([{"status": "Pulling fs layer"}, {"status": "Download complete"}])
    assert _pull(client) == "sha256:abc"
    assert client.images.got == ["registry.invalid/ghost:1"]
