"""`infranode login` without a terminal says what to do instead (#20). No daemon."""

from __future__ import annotations

import io

import pytest

from pytest_infranode.cli import main


def test_login_without_a_terminal_says_what_to_do_instead(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a pipe: not a TTY
    assert main(["login", "infranode-abc-debian-12"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "`infranode login` opens an interactive shell and needs a terminal, but its input is not one"
    )
    assert "`docker exec infranode-abc-debian-12 <command>`" in err
    assert "the input device is not a TTY" not in err
