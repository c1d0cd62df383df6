"""Timings of one testinfra check through each way into a node, measured side by side.

    python benchmarks/run.py [--rounds N] [--suite-rounds N] [--docker-host URL]

Needs a Docker daemon with the debian:12 image (or a registry to pull it). Makes one debian-12
node (systemd, from the prepared image), measures, removes it. Prints medians over N rounds and
ratios; each round runs every method once, in turn, so that the machine's noise falls on all of
them alike. Nothing here asserts a duration.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import testinfra

from pytest_infranode import labels
from pytest_infranode.backend import NodeBackend
from pytest_infranode.backend import make_host
from pytest_infranode.channel import FrameDecoder
from pytest_infranode.engine import Engine
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog

Method = Callable[[], object]


def machine(engine: Engine) -> list[str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"host:    {platform.node()} {platform.system()} {platform.release()} {platform.machine()}",
        f"cpu:     {cpu or 'unknown'} x {os.cpu_count()}",
        f"python:  {platform.python_version()}  testinfra {testinfra_version()}",
        f"docker:  {engine.describe()}",
        f"date:    {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "load:    {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()),
    ]


def bind(check: Callable[[testinfra.host.Host], object], host: testinfra.host.Host) -> Method:
    return lambda: check(host)


def testinfra_version() -> str:
    from importlib.metadata import version

    return version("pytest-testinfra")


def measure(
    methods: dict[str, Method],
    rounds: int,
    warmup: int = 3,
    settle: float = 0.03,
    burst: dict[str, int] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each method, ``rounds`` times, interleaved in a shuffled order.

    Before each sample the daemon gets ``settle`` seconds to finish the previous one's clean-up
    (an exec leaves work behind), so no method pays for another's. A method named in ``burst``
    is sampled as the mean of that many back-to-back calls, as checks run in a suite: a single
    sub-millisecond call after an idle pause mostly measures the CPU waking up.
    """
    burst = burst or {}
    for fn in methods.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    clock = time.perf_counter
    order = list(methods)
    shuffler = random.Random(9)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            fn = methods[name]
            calls = burst.get(name, 1)
            time.sleep(settle)
            start = clock()
            for _ in range(calls):
                fn()
            times[name].append((clock() - start) / calls)
    return times


def table(title: str, times: dict[str, list[float]], baseline: str, floor: str | None) -> list[str]:
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    head = f"{'method':<34} {'median':>11} {'p90':>11} {'faster than ' + baseline:>32}"
    if floor:
        head += f" {'x ' + floor:>26}"
    lines = [title, head, "-" * len(head)]
    for name, ts in times.items():
        p90 = sorted(ts)[int(len(ts) * 0.9) - 1]
        ratio = medians[baseline] / medians[name]
        row = f"{name:<34} {fmt(medians[name]):>11} {fmt(p90):>11} {ratio:>31.1f}x"
        if floor:
            row += f" {medians[name] / medians[floor]:>25.1f}x"
        lines.append(row)
    lines.append(f"({len(next(iter(times.values())))} rounds, interleaved)")
    return lines


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


EXAMPLE = Path(__file__).parents[1] / "examples" / "nginx"


def sessions(engine: Engine, rounds: int) -> list[str]:
    """Whole pytest sessions of the nginx example, each a subprocess, interleaved per round.

    cold: the prepared image is built (a recipe of its own each round: the default one plus a
    no-op step), then converge; warm: prepared image cached, converge runs; converge-cache hit:
    ``--infra-cache=converge`` with an image of this exact converge. Then one platform against
    two (debian-12 + debian-13) at once, and the same two one after another.
    """
    work = Path(tempfile.mkdtemp(prefix="infranode-bench-"))
    token = uuid.uuid4().hex[:10]
    shutil.copytree(EXAMPLE, work / "nginx", ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    project = work / "nginx"
    with open(project / "converge.sh", "a") as script:
        script.write(f"# benchmark {token}\n")  # a converge key of its own
    config = (project / "infranode.yaml").read_text()
    before = {i["Id"] for i in engine.list_images(labels.CONVERGE)}
    default_prepare = Catalog().get("debian-12").prepare
    cold_platforms: list[str] = []

    def session(*args: str, platform_yaml: str = "") -> float:
        (project / "infranode.yaml").write_text(config + platform_yaml)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=project, capture_output=True, text=True, check=False)
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(
                f"benchmark session {args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            )
        return took

    def cold() -> float:
        name = f"bench-cold-{uuid.uuid4().hex[:8]}"
        cold_platforms.append(name)
        steps = ", ".join(f"{step!r}" for step in (*default_prepare, f"true {name}"))
        yaml = f"platform_definitions:\n  {name}:\n    base: debian-12\n    prepare: [{steps}]\n"
        return session(f"--infra-platform={name}", platform_yaml=yaml)

    runs: dict[str, Callable[[], float]] = {
        "cold (image build + converge)": cold,
        "warm (converge)": lambda: session("--infra-platform=debian-12"),
        "converge-cache hit": lambda: session("--infra-platform=debian-12", "--infra-cache=converge"),
        "one platform (debian-12)": lambda: session("--infra-platform=debian-12"),
        "two platforms at once": lambda: session("--infra-platform=debian-12,debian-13"),
        "two platforms, --infra-parallel=1": lambda: session(
            "--infra-platform=debian-12,debian-13", "--infra-parallel=1"
        ),
    }
    try:
        session("--infra-platform=debian-12,debian-13")  # both prepared images exist
        session("--infra-platform=debian-12", "--infra-cache=converge")  # the image of the hit
        times: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs)
        shuffler = random.Random(9)
        for _ in range(rounds):
            shuffler.shuffle(order)
            for name in order:
                times[name].append(runs[name]())
    finally:
        made = [i for i in engine.list_images(labels.CONVERGE) if i["Id"] not in before]
        for name in cold_platforms:
            made += engine.list_images(f"{labels.PLATFORM}={name}")
        for image in made:
            try:
                engine.remove_image(image["Id"])
            except Exception as exc:
                print(f"could not remove image {image['Id'][:19]}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    head = f"{'whole session (11 nginx checks)':<36} {'median':>9} {'min':>9} {'max':>9} {'ratio':>22}"
    lines = ["", f"sessions: `pytest` of examples/nginx in a subprocess ({rounds} rounds, interleaved)"]
    lines += [head, "-" * len(head)]
    refs = {
        "cold (image build + converge)": ("warm (converge)", "x warm"),
        "warm (converge)": ("warm (converge)", "x warm"),
        "converge-cache hit": ("warm (converge)", "x warm"),
        "one platform (debian-12)": ("one platform (debian-12)", "x one platform"),
        "two platforms at once": ("one platform (debian-12)", "x one platform"),
        "two platforms, --infra-parallel=1": ("one platform (debian-12)", "x one platform"),
    }
    for name, ts in times.items():
        ref, label = refs[name]
        ratio = f"{med[name] / med[ref]:.2f} {label}"
        lines.append(f"{name:<36} {fmt(med[name]):>9} {fmt(min(ts)):>9} {fmt(max(ts)):>9} {ratio:>22}")
    hit, serial = med["converge-cache hit"], med["two platforms, --infra-parallel=1"]
    lines.append(
        f"(cold: {med['cold (image build + converge)'] / hit:.1f}x a converge-cache hit; "
        f"warm: {med['warm (converge)'] / hit:.1f}x a hit; "
        f"two at once: {med['two platforms at once'] / serial:.2f}x two one after another)"
    )
    lines.append("molecule test: not attempted")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="Rounds per method (default: 60)")
    parser.add_argument(
        "--suite-rounds",
        type=int,
        default=3,
        help="Rounds of whole pytest sessions (cold/warm/cache hit, one/two platforms; default: 3)",
    )
    parser.add_argument(
        "--docker-host", default=None, help="Docker daemon (default: DOCKER_HOST, local socket)"
    )
    args = parser.parse_args(argv)
    if args.docker_host:
        os.environ["DOCKER_HOST"] = args.docker_host

    engine = Engine.connect(args.docker_host)
    plat = Catalog().get("debian-12")
    image, _cached = engine.prepared_image(plat, lambda msg: print(msg, file=sys.stderr))
    node = Node(engine, plat, session_id=f"bench{uuid.uuid4().hex[:11]}", image=image)
    lines = machine(engine)
    try:
        node.create()
        node.start(boot_timeout=120)
        cid = node.container_id
        api = engine._client.api  # the bare SDK, for the floor of one exec

        def raw_exec(argv: list[str]) -> Method:
            def call() -> object:
                exec_id = api.exec_create(cid, argv)["Id"]
                api.exec_start(exec_id)
                return api.exec_inspect(exec_id)["ExitCode"]

            return call

        ours = make_host(node)
        theirs = testinfra.get_host(f"docker://{node.name}")
        slow = Node(engine, plat, session_id=node.session_id, image=image)
        slow.container_id, slow.state, slow.channel_shell = cid, "booted", ""  # channel off
        fallback = testinfra.host.Host(NodeBackend(slow))
        fallback.backend.set_host(fallback)  # as make_host does
        ours.run("true"), theirs.run("true"), fallback.run("true")  # encodings detected once

        # The floor of a persistent shell: one line, a marker back on stdout and stderr.
        bare = engine.open_shell(cid, ["/bin/sh"])
        decoder = FrameDecoder()

        def bare_shell() -> object:
            bare.send(b"true; echo X; echo X >&2\n")
            seen = 0
            while seen < 2:
                seen += sum(p.count(b"X") for _, p in decoder.feed(bare.recv(65536, 10)))
            return seen

        try:
            checks: dict[str, tuple[Callable[[testinfra.host.Host], object], list[str]]] = {
                'host.run("true")': (lambda h: h.run("true"), ["true"]),
                'host.file("/etc/passwd").exists': (
                    lambda h: h.file("/etc/passwd").exists,
                    ["/bin/sh", "-c", "test -e /etc/passwd"],
                ),
            }
            for title, (check, argv) in checks.items():
                methods: dict[str, Method] = {
                    "raw SDK exec": raw_exec(argv),
                    "testinfra docker://": bind(check, theirs),
                    "infranode fallback (1 exec/cmd)": bind(check, fallback),
                    "infranode channel": bind(check, ours),
                    "persistent-shell floor": bare_shell,
                }
                fast = {"infranode channel": 20, "persistent-shell floor": 20}
                times = measure(methods, args.rounds, burst=fast)
                lines += [
                    "",
                    *table(f"one check: {title}", times, "testinfra docker://", "persistent-shell floor"),
                    "(channel and floor: each sample is the mean of 20 back-to-back calls)",
                ]

            # A warm suite: 25 checks on a booted node, each way.
            suite: list[Callable[[testinfra.host.Host], object]] = [
                lambda h: h.file("/etc/passwd").exists,
                lambda h: h.file("/etc/os-release").contains("bookworm"),
                lambda h: h.package("systemd").is_installed,
                lambda h: h.user("root").uid,
                lambda h: h.group("root").exists,
            ] * 5

            def suite_of(host: testinfra.host.Host) -> Method:
                return lambda: [check(host) for check in suite]

            suite_times = measure(
                {
                    "testinfra docker://": suite_of(theirs),
                    "infranode fallback (1 exec/cmd)": suite_of(fallback),
                    "infranode channel": suite_of(ours),
                },
                max(5, args.rounds // 6),
                warmup=1,
            )
            lines += [
                "",
                *table(
                    "warm suite: 25 testinfra checks on a booted node",
                    suite_times,
                    "testinfra docker://",
                    None,
                ),
            ]
        finally:
            bare.close()
            slow.close()
    finally:
        node.remove()
    try:
        if args.suite_rounds > 0:
            lines += sessions(engine, args.suite_rounds)
    finally:
        engine.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
