"""The sandbox probe's words and what the user is told (pure), and the probe itself in this
machine's own shell, where it must answer one of its words."""

from __future__ import annotations

import subprocess

import pytest

from pytest_infranode import sandbox


@pytest.mark.parametrize("word", sandbox.VERDICTS)
def test_each_word_parses_to_itself(word: str) -> None:
    assert sandbox.parse(f"{word}\n") == word


def test_anything_else_is_unknown() -> None:
    assert sandbox.parse("") == "unknown"
    assert sandbox.parse("sh: unshare: not found") == "unknown"


def test_only_a_weaker_node_is_reported() -> None:
    assert sandbox.warning("ok", "n (debian-12)") is None
    assert sandbox.warning("unknown", "n (debian-12)") is None
    no_cap = sandbox.warning("no-cap-sys-admin", "n (debian-12)")
    assert no_cap is not None
    assert no_cap.startswith("n (debian-12): systemd cannot sandbox units: the node lacks CAP_SYS_ADMIN")
    assert "silently not applied" in no_cap
    assert "Fix: keep SYS_ADMIN" in no_cap
    denied = sandbox.warning("mount-denied", "n (debian-12)")
    assert denied is not None
    assert "Failed to set up mount namespacing" in denied
    assert "apparmor=unconfined" in denied
    assert "container_manage_cgroup" in denied
    limits = sandbox.warning("no-limits", "n (debian-12)")
    assert limits is not None
    assert limits.startswith("n (debian-12): systemd cannot apply units' resource limits")
    assert "MemoryMax=" in limits
    assert "silently not applied" in limits
    assert "Delegate=" in limits


def test_probe_answers_one_of_its_words_in_a_posix_shell() -> None:
    out = subprocess.run(
        ["/bin/sh", "-c", sandbox.PROBE + "sandbox"], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() in sandbox.VERDICTS
