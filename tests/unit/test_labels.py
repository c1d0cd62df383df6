from __future__ import annotations

import os

import pytest

from pytest_infranode import labels
from pytest_infranode.errors import SettingsError


def test_session_ids_differ() -> None:
    ids = {labels.new_session_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.isalnum() and i == i.lower() for i in ids)


def test_node_labels() -> None:
    node = labels.node_labels("abc123", "debian-12", "infranode-abc123-debian-12")
    assert node["infranode.session"] == "abc123"
    assert node["infranode.platform"] == "debian-12"
    assert node["infranode.node"] == "infranode-abc123-debian-12"
    assert node["infranode.pid"] == f"{os.uname().nodename}:{os.getpid()}"
    assert int(node["infranode.created"]) > 0
    assert all(key.startswith(labels.PREFIX) for key in node)


def test_session_filter() -> None:
    assert labels.session_filter("abc123") == {"label": ["infranode.session=abc123"]}


def test_check_user_labels_accepts_foreign_labels() -> None:
    labels.check_user_labels({"com.example.team": "infra", "infranode": "no dot, not ours"})


def test_check_user_labels_rejects_reserved_prefix() -> None:
    with pytest.raises(SettingsError) as excinfo:
        labels.check_user_labels({"infranode.x": "1", "ok": "2", "infranode.a": "3"})
    assert excinfo.value.what == "labels infranode.a, infranode.x use the reserved prefix 'infranode.'"
    assert "rename them" in excinfo.value.fix
