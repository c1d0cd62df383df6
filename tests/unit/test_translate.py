from __future__ import annotations

import docker.errors
import pytest
import requests

from pytest_infranode.engine._translate import is_transient
from pytest_infranode.engine._translate import retrying
from pytest_infranode.engine._translate import translate
from pytest_infranode.errors import DaemonUnreachable
from pytest_infranode.errors import ImageError
from pytest_infranode.errors import NodeError


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("boom", response=response, explanation=explanation)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (requests.exceptions.ConnectionError("reset"), True),
        (requests.exceptions.ReadTimeout("slow"), True),
        (api_error(503, "unavailable"), True),
        (api_error(409, "removal of container abc is already in progress"), True),
        (api_error(404, "No such container"), False),
        (api_error(400, "invalid reference format"), False),
        (api_error(500, "driver failed programming external connectivity"), False),
        (ValueError("user mistake"), False),
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_retrying_retries_transient_then_succeeds() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise requests.exceptions.ConnectionError("reset")
        return "ok"

    assert retrying(flaky) == "ok"
    assert len(calls) == 3


def test_retrying_gives_up_and_does_not_retry_permanent() -> None:
    calls: list[int] = []

    def permanent() -> None:
        calls.append(1)
        raise api_error(400, "bad request")

    with pytest.raises(docker.errors.APIError):
        retrying(permanent)
    assert len(calls) == 1

    def always_down() -> None:
        calls.append(1)
        raise requests.exceptions.ConnectionError("down")

    calls.clear()
    with pytest.raises(requests.exceptions.ConnectionError):
        retrying(always_down, attempts=3)
    assert len(calls) == 3


def test_translate_keeps_the_daemons_explanation_and_chains() -> None:
    with (
        pytest.raises(NodeError) as excinfo,
        translate("starting the node", where="node n", endpoint="unix://x"),
    ):
        raise api_error(500, "unable to apply caps: operation not permitted")
    assert "unable to apply caps: operation not permitted" in str(excinfo.value)
    assert "node n on unix://x" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, docker.errors.APIError)


def test_translate_maps_specific_classes() -> None:
    response = requests.Response()
    response.status_code = 404
    with pytest.raises(ImageError), translate("a", where="b", endpoint="c"):
        raise docker.errors.ImageNotFound("no", response=response, explanation="no such image")
    with pytest.raises(DaemonUnreachable), translate("a", where="b", endpoint="c"):
        raise requests.exceptions.ConnectionError("gone")
