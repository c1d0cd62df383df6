"""What ``Engine.list_*`` make of the daemon's answers, and who satisfies the engine's Protocols.
No daemon."""

from __future__ import annotations

from pytest_infranode.engine.api import CleanupEngine
from pytest_infranode.engine.api import ContainerInfo
from pytest_infranode.engine.api import EngineProtocol
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.engine.api import NetworkInfo
from pytest_infranode.engine.core import Engine
from pytest_infranode.engine.core import container_info
from pytest_infranode.engine.core import image_info
from pytest_infranode.engine.core import network_info
from tests.unit.fakes import FakeEngine

ID = "f" * 64


def test_container_from_the_containers_api() -> None:
    raw = {
        "Id": ID,
        "Names": ["/infranode-debian-12-ab12", "/alias"],
        "Image": "sha256:img",
        "Labels": {"infranode.session": "s1"},
        "State": "running",
        "Status": "Up 2 minutes",
        "Created": 1700000000,
    }
    assert container_info(raw) == ContainerInfo(
        ID, "infranode-debian-12-ab12", {"infranode.session": "s1"}, "running"
    )


def test_container_without_names_labels_or_state() -> None:
    assert container_info({"Id": ID, "Names": [], "Labels": None}) == ContainerInfo(ID, ID[:12], {}, "")
    assert container_info({"Id": ID}).name == ID[:12]


def test_image_from_the_images_api() -> None:
    raw = {
        "Id": "sha256:abc",
        "RepoTags": ["infranode/debian-12:k1", "<none>:<none>"],
        "Labels": {"infranode.recipe": "k1"},
        "Size": 3 * 2**20,
        "Created": 1700000000,
    }
    assert image_info(raw) == ImageInfo(
        "sha256:abc",
        ("infranode/debian-12:k1", "<none>:<none>"),
        {"infranode.recipe": "k1"},
        3 * 2**20,
        1700000000,
    )


def test_image_without_tags_labels_size_or_date() -> None:
    assert image_info({"Id": "sha256:abc", "RepoTags": None, "Labels": None}) == ImageInfo(
        "sha256:abc", (), {}, None, 0
    )


def test_network_from_the_networks_api() -> None:
    raw = {"Id": "n1", "Name": "infranode-s1-debian-12", "Labels": {"infranode.session": "s1"}}
    assert network_info(raw) == NetworkInfo("n1", "infranode-s1-debian-12", {"infranode.session": "s1"})
    assert network_info({"Id": "n1", "Labels": None}) == NetworkInfo("n1", "n1", {})


def _the_engine_satisfies_the_protocols(engine: Engine) -> tuple[EngineProtocol, CleanupEngine]:
    """Never called: mypy (strict, over tests/ too) checks that ``Engine`` fits both Protocols."""
    return engine, engine


def test_the_shared_fake_satisfies_the_protocols() -> None:
    fake = FakeEngine()
    as_engine: EngineProtocol = fake
    as_cleanup: CleanupEngine = fake
    assert as_engine is as_cleanup is fake
