"""Docker SDK and requests errors translated into ours, in one place; the retry policy."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import TypeVar

import docker.errors
import requests.exceptions
import tenacity

from pytest_infranode.errors import DaemonUnreachable
from pytest_infranode.errors import ImageError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import NodeError

log = logging.getLogger("pytest_infranode.engine")

T = TypeVar("T")

_TRANSIENT_TEXT = ("removal of container", "is already in progress", "connection reset")


def is_transient(exc: BaseException) -> bool:
    """True for failures worth one more try: a dropped connection, a 5xx, a removal race."""
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    if isinstance(exc, docker.errors.APIError) and exc.response is not None:
        status = exc.response.status_code
        text = str(exc.explanation or "").lower()
        if status in (502, 503, 504):
            return True
        if status in (409, 500) and any(t in text for t in _TRANSIENT_TEXT):
            return True
    return False


def retrying(fn: Callable[..., T], *args: Any, attempts: int = 4, **kwargs: Any) -> T:
    """Call ``fn``, retrying transient failures with bounded exponential backoff."""
    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=0.2, max=3),
        before_sleep=lambda rs: log.debug("retrying %s after %r", getattr(fn, "__name__", fn), rs.outcome),
        reraise=True,
    )
    return retryer(fn, *args, **kwargs)


@contextlib.contextmanager
def translate(action: str, *, where: str, endpoint: str) -> Iterator[None]:
    """Turn a Docker failure during ``action`` into the most specific :class:`InfranodeError`.

    The daemon's own explanation is kept; the original exception is chained.
    """
    try:
        yield
    except InfranodeError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise ImageError(
            f"{action}: image not found: {exc.explanation or exc}",
            where=f"{where} on {endpoint}",
            fix="check the image reference, or make the image available on the daemon",
        ) from exc
    except docker.errors.NotFound as exc:
        raise NodeError(
            f"{action}: the container is gone: {exc.explanation or exc}",
            where=f"{where} on {endpoint}",
            fix="something removed the node during the session (another cleanup? an OOM kill?)",
        ) from exc
    except docker.errors.APIError as exc:
        raise NodeError(
            f"{action}: the daemon refused: {exc.explanation or exc}",
            where=f"{where} on {endpoint}",
            fix="read the daemon's message above; `infranode doctor` checks the daemon",
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise DaemonUnreachable(
            f"{action}: lost the Docker daemon: {exc}",
            where=endpoint,
            fix="is the daemon still running? `infranode doctor` explains what is wrong",
        ) from exc
    except docker.errors.DockerException as exc:
        raise NodeError(f"{action}: {exc}", where=f"{where} on {endpoint}") from exc
