"""The pytest process's peak memory when a converge prints a lot, against a tiny converge.

    python benchmarks/converge_memory.py [--rounds N] [--megabytes M] [--platform P] [--source DIR]

Each round runs two real sessions, in a shuffled order, each in its own throwaway project: a
shell converge that prints M MB (default 200: ``head -c 200M /dev/zero | tr '\\0' x | fold -w
100``, two million lines of 100 characters) and one that prints one line; both run one
passing test on the node. The pytest process's peak resident set (``ru_maxrss`` of that child,
from ``os.wait4`` once it exits) is printed per session kind, the median over N rounds, and
the ratio. ``--source DIR`` imports pytest_infranode from another checkout (the code before a
change, say) through PYTHONPATH. Needs a Docker daemon with the platform's image (debian-12);
each session removes its node. Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = "def test_node_answers(host):\n    assert host.run('true').rc == 0\n"
INI = "[pytest]\n"  # the converge logs go to the project's .pytest_cache, removed with it


def project(root: Path, command: str) -> Path:
    root.mkdir(parents=True)
    (root / "infranode.yaml").write_text(f"provisioner:\n  name: shell\n  inline:\n    - {command!r}\n")
    (root / "pytest.ini").write_text(INI)
    (root / "test_node.py").write_text(SPEC)
    return root


def peak_rss_mb(root: Path, platform: str, source: str | None) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one pytest session in ``root``."""
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    started = time.perf_counter()
    with open(root / "pytest.out", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", f"--infra-platform={platform}"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (root / "pytest.out").read_text(errors="replace")[-3000:]
        raise SystemExit(f"the session in {root} failed (exit {proc.returncode}):\n{tail}")
    return usage.ru_maxrss / 1024, took  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--platform", default="debian-12")
    parser.add_argument("--source", help="a checkout whose pytest_infranode to import instead")
    args = parser.parse_args()
    big = f"head -c {args.megabytes}M /dev/zero | tr '\\0' x | fold -w 100"
    kinds = {f"converge printing {args.megabytes} MB": big, "converge printing one line": "echo converged"}
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    print(f"python:  {sys.version.split()[0]}  source: {args.source or 'this checkout'}")
    print(f"date:    {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print("load:    {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="infranode-bench-mem-") as tmp:
        for r in range(args.rounds):
            order = list(kinds)
            random.shuffle(order)
            for kind in order:
                root = project(Path(tmp) / f"{r}-{len(samples[kind])}-{kind.split()[2]}", kinds[kind])
                samples[kind].append(peak_rss_mb(root, args.platform, args.source))
    base = statistics.median(m for m, _ in samples["converge printing one line"])
    print()
    print(f"{'session':32} {'peak RSS median':>16} {'min':>9} {'max':>9} {'wall':>8} {'ratio':>10}")
    print("-" * 90)
    for kind, got in samples.items():
        rss = [m for m, _ in got]
        med = statistics.median(rss)
        wall = statistics.median(s for _, s in got)
        print(
            f"{kind:32} {med:13.1f} MB {min(rss):6.1f} MB {max(rss):6.1f} MB {wall:6.1f} s "
            f"{med / base:8.2f} x"
        )
    print(f"({args.rounds} rounds, interleaved; peak RSS of the pytest process, ru_maxrss from wait4)")


if __name__ == "__main__":
    main()
