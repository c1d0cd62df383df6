"""Cold start: where the build of a prepared image goes, step by step; the recipe against a candidate.

    python benchmarks/cold_start.py [--rounds N] [--platforms debian-12,debian-13]

Each round builds, for each platform and each recipe, the prepared image from the platform's
base image (on the daemon already: `infranode images bootstrap debian-12 debian-13` makes them)
through the code a session runs (``images.ensure_prepared``), in a shuffled order. Every build
has a recipe of its own: the platform is copied under a name of this run
(``bench-cold-<token>-<n>``) and its recipe's last marker carries that name, so nothing is cached.
Recipes: ``shipped``, the whole-machine recipe the package ships, and ``candidate``, the same
with a change under trial (:func:`candidate`: dpkg with ``--force-unsafe-io``, no fsync per
unpacked file), so that a change is measured against the recipe in the same run.

The time of a build is split by the arrival of its build log lines at this process: a marker
(``echo @@cold-start <token> <i>``) is put before each step of the recipe and after the last, so
each step's share is read from the stream (the markers cost an ``echo`` each, in both recipes).
Phases, in order, adding up to the whole call:

- ours, before the build: the base image look-up, the recipe key, the cache look-up;
- build context send + FROM: the request with its one-file context until the daemon starts the RUN;
- RUN: build container create + start; each step; of ``apt-get install``, the download (until
  apt's ``Fetched`` line) and dpkg (unpack, configure, triggers);
- RUN exit + commit: the build container stops, its file system changes become the image's layer;
- metadata steps: ENV, STOPSIGNAL, CMD and the labels, each a container the builder commits;
- ours, after the build: the end of the stream and the image id.

Prints medians over the rounds and each phase's share of the whole; asserts no duration. Each
image is removed right after its build (by its own id), and at the end every image labelled
with a platform of this run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform as _platform
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import docker

from pytest_infranode import labels
from pytest_infranode.engine import images
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform

CANDIDATE_OPTION = "-o Dpkg::Options::=--force-unsafe-io"
"""What the candidate recipe adds to each ``apt-get install`` of the recipe."""

MARK = "@@cold-start"

OURS_BEFORE = "ours, before the build (base look-up, key, cache look-up)"
CONTEXT = "build context send + FROM"
CREATE = "RUN: build container create + start"
DOWNLOAD = "package install: download"
DPKG = "package install: dpkg (unpack, configure, triggers)"
COMMIT = "RUN exit + commit (layer export)"
METADATA = "metadata steps (ENV, STOPSIGNAL, CMD, labels)"
OURS_AFTER = "ours, after the build (stream end, image id)"
TOTAL = "whole build (ensure_prepared)"


def step_kind(command: str) -> str:
    """What a recipe step does, in a few words, from its command line. Pure."""
    words = command.split()
    while words and "=" in words[0]:  # DEBIAN_FRONTEND=noninteractive ...
        words = words[1:]
    line = " ".join(words)
    if re.match(r"(apt-get|apt) update\b", line) or re.match(r"(dnf|yum) makecache\b", line):
        return "package index update"
    if re.match(r"(apt-get|apt|dnf|yum) install\b", line) or re.match(r"(zypper .*install|apk add)\b", line):
        return "package install"
    if re.match(r"(apt-get|dnf|yum) clean\b|zypper clean\b|rm -rf\b", line):
        return "cleanup"
    if line.startswith("systemctl mask"):
        return "systemd unit masking"
    return line[:40]


def candidate(steps: Sequence[str]) -> tuple[str, ...]:
    """``steps`` with :data:`CANDIDATE_OPTION` after each ``apt-get install -y``. Pure."""
    return tuple(
        step.replace("apt-get install -y", f"apt-get install -y {CANDIDATE_OPTION}") for step in steps
    )


def marked(steps: Sequence[str], token: str) -> tuple[str, ...]:
    """``steps`` with a marker echoed before each and after the last; the last marker carries
    ``token``, which makes the recipe one of its own. Pure."""
    out: list[str] = []
    for i, step in enumerate(steps):
        out += [f"echo {MARK} {i}", step]
    out.append(f"echo {MARK} {len(steps)} {token}")
    return tuple(out)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""The colours the daemon wraps a RUN's stderr in (``\x1b[91m...\x1b[0m``)."""


def stream_lines(chunks: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """The build log's lines without colours, each with the arrival time of the chunk that
    ended it. Pure."""
    lines: list[tuple[float, str]] = []
    pending = ""
    for at, text in chunks:
        pending += ANSI.sub("", text)
        *done, pending = re.split(r"\r?\n", pending)
        lines += [(at, line) for line in done]
    if pending:
        lines.append((chunks[-1][0], pending))
    return lines


def phases(
    lines: Sequence[tuple[float, str]],
    steps: Sequence[str],
    token: str,
    *,
    called: float,
    requested: float,
    returned: float,
) -> dict[str, float]:
    """Seconds of each phase of one build, from its timed log lines. Pure.

    :param lines: from :func:`stream_lines`, times on the same clock as the rest.
    :param steps: the recipe's steps (unmarked); the log holds the markers of :func:`marked`.
    :param called: when ``ensure_prepared`` was called; ``requested``: when it sent the build;
        ``returned``: when it returned.
    :raises ValueError: a line the split needs is not in the log.
    """

    def first(pattern: str, after: float, exact: bool = False, otherwise: float | None = None) -> float:
        for at, line in lines:
            if at >= after and (line.strip() == pattern if exact else re.search(pattern, line)):
                return at
        if otherwise is not None:
            return otherwise
        raise ValueError(f"no line {pattern!r} in the build log after {after:.3f}")

    run = first(r"^Step \d+/\d+ : RUN ", requested)
    marks = [run]
    for i in range(len(steps) + 1):
        want = f"{MARK} {i}" + (f" {token}" if i == len(steps) else "")
        marks.append(first(want, marks[-1], exact=True))
    committed = first(r"^Removing intermediate container ", marks[-1])
    built = first(r"^Successfully built ", committed)
    out = {
        OURS_BEFORE: requested - called,
        CONTEXT: run - requested,
        CREATE: marks[1] - run,
    }
    for i, step in enumerate(steps):
        start, end = marks[i + 1], marks[i + 2]
        kind = step_kind(step)
        if kind == "package install":
            fetched = min(first(r"^Fetched ", start, otherwise=end), end)  # nothing to fetch: 0
            out[DOWNLOAD] = out.get(DOWNLOAD, 0.0) + fetched - start
            out[DPKG] = out.get(DPKG, 0.0) + end - fetched
        else:
            out[kind] = out.get(kind, 0.0) + end - start
    out[COMMIT] = committed - marks[-1]
    out[METADATA] = built - committed
    out[OURS_AFTER] = returned - built
    out[TOTAL] = returned - called
    return out


class TimedBuilds:
    """The client's build calls, timed: when each was sent and when each log chunk came."""

    def __init__(self, client: docker.DockerClient, clock: Any = time.perf_counter) -> None:
        self._build = client.api.build
        self._clock = clock
        self.requested = 0.0
        self.chunks: list[tuple[float, str]] = []
        client.api.build = self  # the instance attribute shadows the method

    def __call__(self, **kwargs: Any) -> Iterator[Any]:
        self.requested = self._clock()
        self.chunks = []
        for chunk in self._build(**kwargs):
            if isinstance(chunk, dict) and "stream" in chunk:
                self.chunks.append((self._clock(), str(chunk["stream"])))
            yield chunk


def build_once(
    client: docker.DockerClient, timed: TimedBuilds, base: Platform, steps: Sequence[str], name: str
) -> dict[str, float]:
    """Build the prepared image of ``base`` with the recipe ``steps`` under the platform name
    ``name``, remove it, and return its phases."""
    token = name
    plat = dataclasses.replace(base, name=name, aliases=(), prepare=marked(steps, token))
    called = time.perf_counter()
    image_id, cached = images.ensure_prepared(client, plat, "local", say=lambda _msg: None)
    returned = time.perf_counter()
    try:
        if cached:
            raise SystemExit(f"{name}: the prepared image came from the cache; the benchmark needs a build")
        return phases(
            stream_lines(timed.chunks),
            steps,
            token,
            called=called,
            requested=timed.requested,
            returned=returned,
        )
    finally:
        client.api.remove_image(image_id)


def table(platform_name: str, results: dict[str, list[dict[str, float]]], rounds: int) -> list[str]:
    """Medians of each phase per recipe, each one's share of its whole, and candidate / shipped."""
    med = {recipe: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for recipe, rs in results.items()}
    base, other = list(med)
    names = [k for k in med[other] if k != TOTAL] + [k for k in med[base] if k not in med[other]]
    width = max(len(n) for n in [*names, TOTAL])
    ratio_head = f"{other}/{base}"
    head = f"{'phase':<{width}} {base:>9} {'share':>6} {other:>9} {'share':>6} {ratio_head:>18}"
    title = f"{platform_name}: prepared image from its base, {rounds} rounds, medians"
    lines = [title, head, "-" * len(head)]
    for name in [*names, TOTAL]:
        b, a = med[base].get(name), med[other].get(name)
        cells = []
        for value, recipe in ((b, base), (a, other)):
            if value is None:
                cells.append(f"{'-':>9} {'':>6}")
            else:
                cells.append(f"{value:>8.2f}s {100 * value / med[recipe][TOTAL]:>5.1f}%")
        ratio = f"{a / b:>17.2f}x" if a is not None and b else f"{'':>18}"
        lines.append(f"{name:<{width}} {cells[0]} {cells[1]} {ratio}")
    for recipe in (base, other):
        spent = med[recipe][OURS_BEFORE] + med[recipe][OURS_AFTER]
        share = 100 * spent / med[recipe][TOTAL]
        lines.append(f"   {recipe}: ours around the build {spent:.3f}s = {share:.2f}%")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Builds per platform and recipe (default: 3)")
    parser.add_argument("--platforms", default="debian-12,debian-13", help="Comma-separated platform names")
    args = parser.parse_args(argv)
    catalog = Catalog()
    bases = {name: catalog.get(name) for name in args.platforms.split(",")}
    recipes = {"shipped": lambda p: p.prepare, "candidate": lambda p: candidate(p.prepare)}
    client = docker.from_env()
    timed = TimedBuilds(client)
    run = uuid.uuid4().hex[:8]
    made: list[str] = []
    lines = [
        f"host:    {_platform.node()} {_platform.system()} {_platform.release()} x {os.cpu_count()} CPUs",
        f"docker:  {client.version().get('Version')} (API {client.version().get('ApiVersion')})",
        f"date:    {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "load:    {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()),
    ]
    for name, base in bases.items():
        base_id = client.images.get(base.image).id
        lines.append(f"base:    {name}: {base.image} {base_id[7:19]}")
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {recipe: [] for recipe in recipes} for name in bases
    }
    order = [(name, recipe) for name in bases for recipe in recipes]
    shuffler = random.Random(7)
    try:
        for i in range(args.rounds):
            shuffler.shuffle(order)
            for name, recipe in order:
                plat_name = f"bench-cold-{run}-{len(made)}"
                made.append(plat_name)
                steps = recipes[recipe](bases[name])
                results[name][recipe].append(build_once(client, timed, bases[name], steps, plat_name))
            print(f"cold start: round {i + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for plat_name in made:
            for image in client.api.images(filters={"label": f"{labels.PLATFORM}={plat_name}"}):
                try:
                    client.api.remove_image(image["Id"], force=True)
                except docker.errors.APIError as exc:
                    print(f"could not remove image {image['Id'][:19]}: {exc}", file=sys.stderr)
        client.close()
    for name in bases:
        lines += ["", *table(name, results[name], args.rounds)]
    first = next(iter(bases.values()))
    lines += [
        "",
        "shipped:   " + " && ".join(first.prepare)[:160] + " ...",
        "candidate: " + " && ".join(candidate(first.prepare))[:160] + " ...",
        "load at the end: {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()),
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
