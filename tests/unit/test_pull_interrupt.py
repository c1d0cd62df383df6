"""An interrupt stops an image pull at once, even one the daemon has not answered yet. Pure:
the pull request blocks on an event, as behind a stalled registry."""

from __future__ import annotations

import threading
import time
from typing import Any
from typing import cast

import docker
import pytest

from pytest_infranode.engine.images import pull
from pytest_infranode.errors import Interrupted
from pytest_infranode.interrupt import Cancel


class StalledApi:
    """An APIClient whose pull never answers until ``answer`` is set."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[Any]] = {}
        self.asked = threading.Event()
        self.answer = threading.Event()

    def pull(self, repo: str, *, tag: str, stream: bool, decode: bool) -> Any:
        self.asked.set()
        self.answer.wait(30)
        return iter([{"status": "Downloaded"}])


class Client:
    def __init__(self) -> None:
        self.api = StalledApi()
        self.images = self

    def get(self, name: str) -> Any:
        return type("Image", (), {"id": "sha256:abc"})()


def test_an_interrupt_stops_a_pull_the_daemon_has_not_answered() -> None:
    client = Client()
    cancel = Cancel()
    outcome: list[BaseException | str] = []

    def bring_up() -> None:
        with cancel.bound():
            try:
                outcome.append(
                    pull(
                        cast(docker.DockerClient, client),
                        "127.0.0.1:5000/x:1",
                        mirror="",
                        endpoint="unix:///x",
                        say=lambda _: None,
                    )
                )
            except BaseException as exc:
                outcome.append(exc)

    thread = threading.Thread(target=bring_up)
    thread.start()
    assert client.api.asked.wait(5)
    assert cancel.phases() == ("the pull of 127.0.0.1:5000/x:1",)  # where it was, for the user
    started = time.monotonic()
    cancel.set("SIGINT")
    thread.join(5)
    waited = time.monotonic() - started
    client.api.answer.set()
    assert not thread.is_alive()
    assert isinstance(outcome[0], Interrupted), outcome
    assert "interrupted (SIGINT) before the pull of 127.0.0.1:5000/x:1" in str(outcome[0])
    assert waited < 2, "not stopped at once"
    assert cancel.interrupted_during == ("the pull of 127.0.0.1:5000/x:1",)


def test_a_pull_that_answers_returns_its_image() -> None:
    client = Client()
    client.api.answer.set()
    with Cancel().bound():
        found = pull(
            cast(docker.DockerClient, client),
            "127.0.0.1:5000/x:1",
            mirror="",
            endpoint="e",
            say=lambda _: None,
        )
    assert found == "sha256:abc"


def test_a_pull_error_from_the_helper_thread_is_raised_as_before() -> None:
    client = Client()

    def failing(repo: str, **_: Any) -> Any:
        raise docker.errors.APIError("manifest unknown", explanation="manifest unknown")

    client.api.pull = failing  # type: ignore[method-assign]
    with Cancel().bound(), pytest.raises(Exception, match="could not be pulled"):
        pull(
            cast(docker.DockerClient, client),
            "127.0.0.1:5000/x:1",
            mirror="",
            endpoint="e",
            say=lambda _: None,
            sleep=lambda _: None,
        )
