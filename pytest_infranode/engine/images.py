"""Image supply: the platform's base image, and the prepared "whole machine" image built on it.

The prepared image is found again by a label holding the hash of its recipe (the rendered
Dockerfile and the base image's id), so a later session does not rebuild it, and a changed
recipe or base image makes a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shlex
import tarfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Literal

import docker
import docker.errors
import requests.exceptions
import tenacity

from pytest_infranode import interrupt
from pytest_infranode import labels
from pytest_infranode.engine import bootstrap as _bootstrap
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.errors import ImageError
from pytest_infranode.platforms import Platform
from pytest_infranode.platforms import install_command

log = logging.getLogger("pytest_infranode.engine")

RECIPE_VERSION = "1"
"""Bumped when the way prepared images are made changes, so old ones are not reused."""


def render_dockerfile(platform: Platform) -> str:
    """The Dockerfile of a platform's prepared image. Pure."""
    lines = [f"FROM {platform.image}"]
    steps = list(platform.prepare)
    if platform.packages:
        steps.append(install_command(platform.package_manager, platform.packages))
    if steps:
        script = " && \\\n    ".join(steps)
        lines.append(f"RUN set -e; \\\n    {script}")
    if platform.init == "systemd":
        lines.append("ENV container=docker")
        lines.append("STOPSIGNAL SIGRTMIN+3")
    if platform.command:
        lines.append("CMD " + json.dumps(list(platform.command)))
    return "\n".join(lines) + "\n"


def recipe_hash(dockerfile: str, base_image_id: str) -> str:
    """The cache key of a prepared image. Pure."""
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, base_image_id, dockerfile):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def prepared_tag(platform: Platform, key: str) -> str:
    return _tag_of(platform.name, key)


def _tag_of(platform_name: str, key: str) -> str:
    return f"infranode/{platform_name}:{key}"


def is_prepared(image: ImageInfo) -> bool:
    """Whether a listed image is a prepared image the plugin built: labelled with a recipe and a
    platform, and tagged with the prepared tag of that recipe (or untagged: an older build whose
    tag went to a newer one). An image committed from a node carries the node's labels too (a
    user's ``docker commit`` for a look inside); it is the user's, neither used nor pruned. Pure.
    """
    platform, key = image.labels.get(labels.PLATFORM), image.labels.get(labels.RECIPE)
    if not platform or not key:
        return False
    tags = [t for t in image.repo_tags if t != "<none>:<none>"]
    return not tags or _tag_of(platform, key) in tags


def _context_tar(dockerfile: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


PullProblem = Literal["dns", "refused", "auth", "not-found", "rate-limited", "transient", "other"]

_PULL_PATTERNS: tuple[tuple[PullProblem, tuple[str, ...]], ...] = (
    ("rate-limited", ("toomanyrequests", "429 too many requests", "rate limit")),
    ("auth", ("unauthorized", "401 unauthorized", "authentication required", "denied: requested access")),
    (
        "not-found",
        ("manifest unknown", "not found", "pull access denied", "repository does not exist", "no such image"),
    ),
    ("dns", ("no such host", "name resolution", "server misbehaving", "name or service not known")),
    ("refused", ("connection refused",)),
    (
        "transient",
        (
            "i/o timeout",
            "tls handshake timeout",
            "context deadline exceeded",
            "connection reset",
            "500 internal server error",
            "502 bad gateway",
            "503 service unavailable",
            "504 gateway timeout",
            "unexpected eof",
            "timeout",
        ),
    ),
)

_PLAIN_WORDS: dict[PullProblem, str] = {
    "dns": "the registry's host name does not resolve (no network, or no registry for this name here)",
    "refused": "nothing answers at the registry's address (registry stopped, or wrong port)",
    "auth": "the registry refused the credentials (401): log in, or the image is private",
    "not-found": "the registry has no such image or tag (404)",
    "rate-limited": "the registry rate-limited this machine (429 Too Many Requests)",
    "transient": "the registry failed or timed out",
    "other": "the pull failed",
}


def pull_problem(message: str) -> PullProblem:
    """What a daemon's pull error message means, in one word. Pure."""
    text = message.lower()
    for problem, needles in _PULL_PATTERNS:
        if any(n in text for n in needles):
            return problem
    return "other"


def _retry_pull(exc: BaseException) -> bool:
    """429, 5xx, timeouts and a registry not answering yet are worth another try; the rest not."""
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    if isinstance(exc, docker.errors.APIError):
        return pull_problem(str(exc.explanation or exc)) in ("rate-limited", "transient", "refused")
    return False


def _reason(exc: BaseException | None) -> str:
    """The daemon's own words for a failed pull, without docker-py's "500 Server Error for ..."."""
    return str(getattr(exc, "explanation", None) or exc)


def mirrored(reference: str, mirror: str) -> str:
    """``debian:12`` pulled through ``mirror`` (``mirror.gcr.io/library/debian:12``). Pure.

    Only Docker Hub references are rewritten; ``quay.io/...`` and other registries are not.
    """
    if not mirror:
        return reference
    first, sep, rest = reference.partition("/")
    explicit_registry = bool(sep) and ("." in first or ":" in first or first == "localhost")
    if explicit_registry and first not in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return reference
    path = rest if explicit_registry else reference
    if "/" not in path:
        path = f"library/{path}"
    return f"{mirror.rstrip('/')}/{path}"


def _split_tag(reference: str) -> tuple[str, str]:
    repo, _, tag = reference.rpartition(":")
    if not repo or "/" in tag:
        return reference, "latest"
    return repo, tag


def pull(
    client: docker.DockerClient,
    reference: str,
    *,
    mirror: str,
    endpoint: str,
    say: Callable[[str], None],
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Pull ``reference`` (through ``mirror``), tag it as ``reference``, return its id.

    :raises ImageError: in plain words: DNS, refused, 401, 404, 429 after retries.
    """
    source = mirrored(reference, mirror)
    say(f"{reference}: pulling {source}" + (f" (registry mirror {mirror})" if source != reference else ""))
    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retry_pull),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=1, max=8),
        before_sleep=lambda rs: (
            say(f"{source}: pull failed ({_reason(rs.outcome.exception())}); retrying")
            if rs.outcome is not None
            else None
        ),
        reraise=True,
        sleep=sleep,
    )
    repo, tag = _split_tag(source)
    try:
        with interrupt.phase(f"the pull of {source}"):
            image: Any = retryer(_cancellable_pull, client, repo, tag)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        reason = _reason(exc)
        problem = pull_problem(reason)
        raise PullFailed(reference, source, problem, reason, endpoint) from exc
    # Podman may swallow a failed pull and return nothing usable; check again.
    if isinstance(image, list):
        image = image[0] if image else None
    if image is None:
        raise PullFailed(reference, source, "other", "the daemon returned no image", endpoint)
    if source != reference:
        image.tag(*_split_tag(reference))
    return str(image.id)


def _cancellable_pull(client: docker.DockerClient, repo: str, tag: str) -> Any:
    """:func:`_pull_once`, stopped at once by an interrupt (which raises Interrupted).

    A daemon answers a pull only once the registry does: a stalled registry keeps the request
    without even its response headers, so there is no response to close yet. So the request
    runs in a helper thread, and the interrupt wakes this one: it closes the connection when
    the daemon has answered (its streamed response), else leaves the helper, a daemon thread
    blocked on that socket, to end with its answer or the process. (Docker 20.10 lets its own
    request to the registry run on until the registry answers either way.)
    """
    cancel = interrupt.current()
    if cancel is None:  # no session to interrupt it (the `infranode` command)
        return _pull_once(client, repo, tag)
    woken = threading.Event()
    outcome: list[tuple[bool, Any]] = []
    caught: list[list[Any]] = []

    def helper() -> None:
        try:
            with _Responses.of(client.api).caught(cancel) as responses:
                caught.append(responses)
                outcome.append((True, _pull_once(client, repo, tag)))
        except BaseException as exc:  # handed to the waiting thread
            outcome.append((False, exc))
        finally:
            woken.set()

    def stop() -> None:
        for responses in caught:
            _close_responses(responses)
        woken.set()

    what = f"the pull of {repo}:{tag}"
    with interrupt.stopping(stop):
        threading.Thread(target=helper, name=f"infranode-pull-{repo}", daemon=True).start()
        woken.wait()
    cancel.check(what)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _pull_once(client: docker.DockerClient, repo: str, tag: str) -> Any:
    """``client.images.pull`` without its blind spot: an error in the progress stream.

    Podman answers a failed pull with 200 and reports the failure inside the stream (Docker
    does so too for failures after the first byte); docker-py's ``images.pull`` drops it and
    then says "No such image". Here the stream's error is raised with the daemon's words.
    """
    api = getattr(client, "api", None)
    if api is None or not hasattr(api, "pull"):
        return client.images.pull(repo, tag=tag)
    for line in api.pull(repo, tag=tag, stream=True, decode=True):
        message = line.get("error") if isinstance(line, dict) else None
        if message:
            raise docker.errors.APIError(str(message), explanation=str(message))
    return client.images.get(f"{repo}:{tag}")


class PullFailed(ImageError):
    """A pull failed; carries the kind of failure for the resolution's final message."""

    def __init__(self, reference: str, source: str, problem: PullProblem, reason: str, endpoint: str) -> None:
        fixes: dict[PullProblem, str] = {
            "dns": "set `registry_mirror:` in infranode.yaml to a registry this machine reaches, or make "
            "the image another way: `infranode images bootstrap` (Debian/Ubuntu), or `docker load`",
            "refused": "start the registry, or check its address and port",
            "auth": "`docker login` on the daemon's host, or use a public image",
            "not-found": "check the image name and tag in the platform (`infranode platforms`)",
            "rate-limited": "wait, log in to raise the limit, or set `registry_mirror:` in infranode.yaml",
            "transient": "try again later, or set `registry_mirror:` in infranode.yaml",
            "other": "read the daemon's message above",
        }
        super().__init__(
            f"image {reference} is not on the daemon and could not be pulled from {source}: "
            f"{_PLAIN_WORDS[problem]}",
            where=f"daemon {endpoint}",
            fix=fixes[problem],
            detail=f"daemon said: {reason}",
        )
        self.problem = problem


class _Responses:
    """The streamed responses this thread's requests got through one client (a ``requests``
    response hook), so that an interrupt can close the connection of a build under way: the
    daemon then cancels the build and removes its build container (``forcerm``)."""

    def __init__(self, api: Any) -> None:
        self._mine: dict[int, tuple[list[Any], interrupt.Cancel | None]] = {}
        self._lock = threading.Lock()
        api.hooks.setdefault("response", []).append(self._seen)

    @classmethod
    def of(cls, api: Any) -> _Responses:
        with _RESPONSES_LOCK:
            found = getattr(api, "_infranode_responses", None)
            if found is None:
                found = cls(api)
                api._infranode_responses = found
            return found

    def _seen(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            mine = self._mine.get(threading.get_ident())
        if mine is not None:
            caught, cancel = mine
            caught.append(response)
            if cancel is not None and cancel.is_set:  # interrupted while the request was sent
                _close_responses([response])
        return response

    @contextlib.contextmanager
    def caught(self, cancel: interrupt.Cancel | None) -> Iterator[list[Any]]:
        """The responses of this thread's requests made in the block; one that comes after
        ``cancel`` was set is closed at once."""
        ident = threading.get_ident()
        caught: list[Any] = []
        with self._lock:
            self._mine[ident] = (caught, cancel)
        try:
            yield caught
        finally:
            with self._lock:
                self._mine.pop(ident, None)


_RESPONSES_LOCK = threading.Lock()


def _close_responses(responses: list[Any]) -> None:
    """Shut the connections of ``responses`` down: a thread reading one stops at once."""
    for response in list(responses):
        try:
            docker.types.CancellableStream(iter(()), response).close()
        except docker.errors.DockerException:  # ssh://: no socket to shut down
            response.close()


def _build(client: docker.DockerClient, request: dict[str, Any], *, what: str, where: str, fix: str) -> str:
    """Run one image build, streaming its log; an error names ``what`` and carries the log tail.

    An interrupt closes its connection, so that the daemon cancels the build and removes its
    build container (``forcerm``), and raises Interrupted.
    """
    output: list[str] = []
    image_id = ""
    cancel = interrupt.current()
    with (
        _Responses.of(client.api).caught(cancel) as responses,
        interrupt.stopping(lambda: _close_responses(responses)),
    ):
        try:
            stream: Any = client.api.build(rm=True, forcerm=True, decode=True, **request)
            for chunk in stream:
                if "stream" in chunk:
                    output.append(str(chunk["stream"]))
                if "error" in chunk:
                    raise ImageError(
                        f"{what} failed: {chunk['error'].strip()}",
                        where=where,
                        fix=fix,
                        detail="".join(output)[-3000:],
                    )
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = str(chunk["aux"]["ID"])
        except Exception as exc:
            if cancel is not None and cancel.is_set:  # the closed connection, not the build
                cancel.check(what)
            if isinstance(exc, docker.errors.APIError):
                raise ImageError(
                    f"{what} failed: {exc.explanation or exc}", where=where, detail="".join(output)[-3000:]
                ) from exc
            raise
    if cancel is not None and cancel.is_set:  # the stream may end quietly when its connection is shut
        if image_id:  # finished all the same: not an image of this recipe's to keep
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_image(image_id, force=True)
        cancel.check(what)
    return image_id


def _build_base(
    client: docker.DockerClient, platform: Platform, endpoint: str, say: Callable[[str], None]
) -> str:
    """Build the platform's base image from its Dockerfile, tagged as its image reference."""
    path = Path(platform.dockerfile)
    say(f"{platform.name}: building {platform.image} from {path}")
    image_id = _build(
        client,
        dict(
            path=str(path.parent),
            dockerfile=path.name,
            tag=platform.image,
            labels={labels.PLATFORM: platform.name},
        ),
        what=f"building {platform.image} from {path}",
        where=f"platform {platform.name} ({platform.source}), daemon {endpoint}",
        fix="fix the Dockerfile; the build log is below",
    )
    return image_id or str(client.images.get(platform.image).id)


def base_image_id(
    client: docker.DockerClient,
    platform: Platform,
    endpoint: str,
    say: Callable[[str], None],
    *,
    mirror: str = "",
    pull_policy: str = "missing",
) -> str:
    """The id of the platform's base image, from the first source that has it.

    1. on the daemon already (unless ``pull_policy`` is ``always``);
    2. pulled (unless ``never``), through ``mirror`` for Docker Hub images, retried on 429,
       5xx and timeouts;
    3. built from the platform's Dockerfile;
    4. made with debootstrap on this machine (Debian and Ubuntu platforms).

    :raises ImageError: naming the image, the daemon, what each step found, and what to do.
    """
    if pull_policy != "always":
        try:
            found = str(client.images.get(platform.image).id)
        except docker.errors.ImageNotFound:
            say(f"{platform.name}: {platform.image} is not on the daemon")
        else:
            return found
    failures: list[str] = []
    pull_error: PullFailed | None = None
    if pull_policy != "never":
        try:
            return pull(client, platform.image, mirror=mirror, endpoint=endpoint, say=say)
        except PullFailed as err:
            pull_error = err
            failures.append(f"pull: {err.what}")
            if pull_policy == "always":
                raise err from None  # its "daemon said:" has the registry's words; no 500 chain
            say(f"{platform.name}: {err.what}")
    else:
        failures.append("pull: not tried (pull: never)")
    if platform.dockerfile:
        return _build_base(client, platform, endpoint, say)
    failures.append("Dockerfile: the platform has none")
    if platform.bootstrap is not None:
        why_not = _bootstrap.unavailable()
        if why_not is None:
            say(f"{platform.name}: making {platform.image} with debootstrap from {platform.bootstrap.mirror}")
            return _bootstrap.make_image(client, platform, platform.image, say=say)
        failures.append(f"bootstrap: {why_not}")
    else:
        failures.append("bootstrap: the platform has no debootstrap recipe")
    raise ImageError(
        f"no way to get image {platform.image} for platform {platform.name}",
        where=f"platform {platform.name} ({platform.source}), daemon {endpoint}",
        fix=(pull_error.fix + "; " if pull_error else "")
        + "or put the image on the daemon yourself "
        + f"(`docker load`, `docker pull {shlex.quote(platform.image)}`)",
        detail="tried, in order:\n"
        + "\n".join(f"  - {f}" for f in failures)
        + (f"\n{pull_error.detail}" if pull_error else ""),
    )


def find_prepared(client: docker.DockerClient, platform: Platform, key: str) -> str | None:
    """The prepared image of ``key``, found by its tag and checked by its label; never by the
    label alone, which every image committed from a node inherits."""
    try:
        image = client.images.get(prepared_tag(platform, key))
    except docker.errors.ImageNotFound:
        return None
    return str(image.id) if (image.labels or {}).get(labels.RECIPE) == key else None


def ensure_prepared(
    client: docker.DockerClient,
    platform: Platform,
    endpoint: str,
    say: Callable[[str], None],
    *,
    mirror: str = "",
    pull_policy: str = "missing",
) -> tuple[str, bool]:
    """The prepared image of ``platform``: ``(image id, True if it came from the cache)``."""
    base_id = base_image_id(client, platform, endpoint, say, mirror=mirror, pull_policy=pull_policy)
    dockerfile = render_dockerfile(platform)
    key = recipe_hash(dockerfile, base_id)
    cached = find_prepared(client, platform, key)
    if cached:
        say(f"{platform.name}: prepared image {key} found (cache hit)")
        return cached, True
    tag = prepared_tag(platform, key)
    say(f"{platform.name}: building the prepared image {tag} (once per recipe)")
    interrupt.now(f"the build of the prepared image {tag}")
    image_id = _build(
        client,
        dict(
            fileobj=_context_tar(dockerfile),
            custom_context=True,
            tag=tag,
            labels={labels.RECIPE: key, labels.PLATFORM: platform.name},
            pull=False,
        ),
        what=f"building the prepared image of {platform.name}",
        where=f"platform {platform.name}, daemon {endpoint}",
        fix="check that the node can reach its package mirror; the build log is below",
    )
    return image_id or str(client.images.get(tag).id), False


def current_key(client: docker.DockerClient, platform: Platform) -> str | None:
    """The recipe key the platform's prepared image would have now; None when its base image is
    not on the daemon (nothing is pulled)."""
    try:
        base_id = str(client.images.get(platform.image).id)
    except docker.errors.ImageNotFound:
        return None
    return recipe_hash(render_dockerfile(platform), base_id)


def stale_images(images: Sequence[ImageInfo], current: Mapping[str, str | None]) -> list[ImageInfo]:
    """Prepared images whose recipe is no longer the current one of their platform (or that lost
    their tag to a newer build of the same recipe). Pure.

    :param images: from ``Engine.list_images``.
    :param current: platform name → its current recipe key (None: unknown, base not present).
    """
    stale = []
    for image in images:
        found = image.labels
        platform, key = found.get(labels.PLATFORM), found.get(labels.RECIPE)
        if key is None:
            continue
        untagged = not [t for t in image.repo_tags if t != "<none>:<none>"]
        if (
            untagged
            or platform is None
            or platform not in current
            or (current[platform] is not None and current[platform] != key)
        ):
            stale.append(image)
    return stale
