"""Platform and node names that would build one container name are refused before any node. No daemon."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings
from pytest_infranode.targets import NodeLayout
from pytest_infranode.targets import check_unique_names


def _settings_of(tmp_path: Path, text: str, *platforms: str):  # type: ignore[no-untyped-def]
    (tmp_path / "infranode.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return build_settings(RawOptions(cli_platforms=list(platforms)), tmp_path)


COLLIDING = """
provisioner: {name: shell, inline: ["true"]}
platform_definitions:
  debian-12-x: {base: debian-12}
nodes:
  x-y: {}
  y: {}
"""


def test_platform_and_node_names_that_meet_are_refused(tmp_path: Path) -> None:
    settings = _settings_of(tmp_path, COLLIDING, "debian-12", "debian-12-x")
    with pytest.raises(SettingsError) as excinfo:
        NodeLayout(settings)
    err = excinfo.value
    config = tmp_path / "infranode.yaml"
    assert err.what == (
        "platform 'debian-12' node 'x-y' and platform 'debian-12-x' node 'y' would have one name: "
        "the container and the container are both infranode-<session>-debian-12-x-y"
    )
    assert err.where == (
        f"node 'x-y' at {config}:5 (nodes.x-y); node 'y' at {config}:6 (nodes.y); "
        "platforms from --infra-platform"
    )
    assert err.fix.startswith("rename one of the two nodes in `nodes:`, or give one platform another name")


def test_the_same_nodes_on_one_platform_are_fine(tmp_path: Path) -> None:
    settings = _settings_of(tmp_path, COLLIDING, "debian-12")
    check_unique_names(settings)  # no error
    assert list(NodeLayout(settings).configs) == ["x-y", "y"]


def test_a_dot_and_a_dash_make_one_name(tmp_path: Path) -> None:
    text = """
    provisioner: {name: shell, inline: ["true"]}
    platform_definitions:
      rocky-9.3: {base: debian-12}
      rocky-9-3: {base: debian-12}
    """
    settings = _settings_of(tmp_path, text, "rocky-9.3", "rocky-9-3")
    with pytest.raises(SettingsError) as excinfo:
        check_unique_names(settings)
    assert excinfo.value.what == (
        "platform 'rocky-9.3' and platform 'rocky-9-3' would have one name: "
        "the container and the container are both infranode-<session>-rocky-9-3"
    )
    assert excinfo.value.where == "platforms from --infra-platform"


def test_a_node_named_like_another_nodes_kept_name_is_refused(tmp_path: Path) -> None:
    text = """
    provisioner: {name: shell, inline: ["true"]}
    nodes:
      web: {}
      web-kept: {}
    """
    settings = _settings_of(tmp_path, text, "debian-12")
    with pytest.raises(SettingsError) as excinfo:
        check_unique_names(settings)
    assert excinfo.value.what == (
        "platform 'debian-12' node 'web-kept' and platform 'debian-12' node 'web' would have one name: "
        "the container and the kept container (--infra-keep) are both infranode-<session>-debian-12-web-kept"
    )


def test_a_node_named_like_the_platforms_network_is_refused(tmp_path: Path) -> None:
    text = """
    provisioner: {name: shell, inline: ["true"]}
    platform_definitions:
      debian-12-db: {base: debian-12}
    nodes:
      db: {}
    """
    settings = _settings_of(tmp_path, text, "debian-12", "debian-12-db")
    # debian-12's node db is infranode-<session>-debian-12-db, the name of debian-12-db's network:
    # containers and networks are apart in Docker, so that one is fine.
    check_unique_names(settings)
