"""Where a converge's time goes, for the pyinfra, puppet, salt and chef provisioners.

    python benchmarks/provisioners.py [--rounds N] [--fresh N] [--salt-fresh N] [--only NAMES]

Each provisioner converges its example (``examples/pyinfra``, ``examples/puppet``,
``examples/salt``; chef a small fixed spec, ``benchmarks/chef``) on fresh debian-12 nodes
(the prepared image, booted with systemd, as a session makes them), through the
provisioner's own ``converge`` in this process. The jobs (one fresh node each) run in a
shuffled order; medians over them.

- **puppet, salt, chef** run their tool *in* the node. The engine they reach it through is
  timed call by call, and each call is put under the phase it serves: *install / find*
  (looking for the tool, installing it when missing: apt for puppet, pip for salt),
  *transfer* (``rm -rf`` of the copy of the project in the node and the one archive request
  that puts the files in), *in-node work* (the tool's run: ``puppet apply``, ``salt-call``,
  ``cinc-client``). Each fresh node has its first converge (the install is in it), then
  ``--rounds`` second converges (the idempotence check's: the tool is found).
  ``--fresh`` fresh nodes for puppet and chef, ``--salt-fresh`` for salt (pip-installing Salt
  takes minutes).
- **pyinfra** runs on the runner and reaches the node through the ``@infranode`` connector, a
  command at a time. *tool start-up* is a converge of an empty deploy (pyinfra's start, its
  inventory, connecting, its first facts); *in-node work* is the converge minus that; the
  deploy's files go in with the operations (one archive request a file). Each of
  ``--rounds`` fresh nodes per method: the connector over the exec channel (now) and one exec
  per command (``INFRANODE_PYINFRA_CHANNEL=false``, before), first and second converge.

Prints medians and ratios from one run; asserts no duration. Every node carries a session
label of this run and is removed at the end.
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
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog
from pytest_infranode.provisioners import chef
from pytest_infranode.provisioners import puppet
from pytest_infranode.provisioners import pyinfra
from pytest_infranode.provisioners import salt
from pytest_infranode.provisioners._common import find_tool
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import read_config_file

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = {
    "pyinfra": ROOT / "examples" / "pyinfra",
    "puppet": ROOT / "examples" / "puppet",
    "salt": ROOT / "examples" / "salt",
    "chef": ROOT / "benchmarks" / "chef",
}
IN_NODE = {
    "puppet": (puppet.PuppetProvisioner(), puppet.REMOTE, "puppet apply"),
    "salt": (salt.SaltProvisioner(), salt.REMOTE, "salt-call --local"),
    "chef": (chef.ChefProvisioner(), chef.REMOTE, "cinc-client --local-mode"),
}
PHASES = ("install", "transfer", "run")
PYINFRA_METHODS = {
    "exec channel (now)": {},
    "one exec per command (before)": {"INFRANODE_PYINFRA_CHANNEL": "false"},
}


class TimedEngine:
    """The engine as an in-node provisioner sees it: every exec and copy timed, under its phase.

    ``rm -rf <remote>`` and the copy into ``<remote>`` are the transfer; what runs after the
    copy is the tool's work; what runs before it is finding (or installing) the tool.
    """

    def __init__(self, engine: Engine, remote: str) -> None:
        self.engine = engine
        self.remote = remote
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.calls = dict.fromkeys(PHASES, 0)
        self.copied = False
        self.installs: list[tuple[str, float, int]] = []
        """(command, seconds, exit status) of each install-phase exec."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def _timed(self, phase: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds[phase] += time.perf_counter() - started
            self.calls[phase] += 1

    def exec(self, container_id: str, argv: Sequence[str], **kwargs: Any) -> Any:
        if list(argv) == ["rm", "-rf", self.remote]:
            phase = "transfer"
        else:
            phase = "run" if self.copied else "install"
        started = time.perf_counter()
        result = self._timed(phase, lambda: self.engine.exec(container_id, argv, **kwargs))
        if phase == "install":
            self.installs.append((" ".join(argv)[-90:], time.perf_counter() - started, result.exit_status))
        return result

    def put_files(self, container_id: str, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        into_project = dest_dir == self.remote or dest_dir.startswith(self.remote + "/")
        self.copied = self.copied or into_project
        phase = "transfer" if into_project else "install"  # salt's pip CA bundle is the install's
        self._timed(phase, lambda: self.engine.put_files(container_id, dest_dir, files))


def config_of(project: Path, **options: Any) -> ProvisionerConfig:
    data, source = read_config_file(project / "infranode.yaml")
    written = dict(data["provisioner"])
    name = written.pop("name")
    return ProvisionerConfig(name=name, options={**written, **options}, base_dir=project, source=source)


class Bench:
    def __init__(self, engine: Engine, image: str) -> None:
        self.engine = engine
        self.image = image
        self.platform = Catalog().get("debian-12")
        self.session = labels.new_session_id()
        self.made = 0

    def node(self) -> Node:
        self.made += 1
        node = Node(
            self.engine, self.platform, session_id=self.session, image=self.image, short_name=f"b{self.made}"
        )
        node.create(create_kwargs(node.spec, self.engine.info))
        node.start(boot_timeout=180)
        return node

    def cleanup(self) -> None:
        for info in self.engine.list_containers([f"{labels.SESSION}={self.session}"]):
            self.engine.remove_container(info.id)


def converge(provisioner: Any, node: Node, config: ProvisionerConfig, again: bool) -> tuple[float, int, str]:
    """(seconds, exit status, output tail) of one converge (``again``: the idempotence check's)."""
    node.converge_round = 2 if again else 1
    output = bytearray()
    started = time.perf_counter()
    result = provisioner.converge(node, config, output.extend)
    took = time.perf_counter() - started
    return took, result.exit_status, output[-3000:].decode(errors="replace") or result.output


def in_node_job(bench: Bench, name: str, repeats: int, samples: dict[str, Any]) -> None:
    provisioner, remote, _tool = IN_NODE[name]
    config = config_of(PROJECTS[name])
    node = bench.node()
    try:
        for i in range(1 + repeats):
            timed = TimedEngine(bench.engine, remote)
            node.engine = timed  # type: ignore[assignment]
            took, status, tail = converge(provisioner, node, config, i > 0)
            node.engine = bench.engine
            kind = "first" if i == 0 else "second"
            if status != 0:
                if i == 0 and not timed.copied:
                    samples["unavailable"] = (
                        tail.strip().splitlines()[-1] if tail.strip() else f"exit {status}"
                    )
                    samples.setdefault("first", []).append(
                        {"total": took, **timed.seconds, "calls": timed.calls}
                    )
                    return
                raise SystemExit(f"{name}: the {kind} converge failed (exit {status}):\n{tail}")
            samples.setdefault(kind, []).append({"total": took, **timed.seconds, "calls": dict(timed.calls)})
            if i == 0:
                samples.setdefault("installs", []).append(timed.installs)
    finally:
        bench.engine.remove_container(node.container_id)


def pyinfra_job(bench: Bench, method: str, empty: Path, samples: dict[str, Any]) -> None:
    provisioner = pyinfra.PyinfraProvisioner()
    env = PYINFRA_METHODS[method]
    example = config_of(PROJECTS["pyinfra"], env=env)
    nothing = ProvisionerConfig(name="pyinfra", options={"deploy": "empty.py", "env": env}, base_dir=empty)
    node = bench.node()
    try:
        row: dict[str, float] = {}
        for kind, config in (("start-up", nothing), ("first", example), ("second", example)):
            took, status, tail = converge(provisioner, node, config, kind == "second")
            if status != 0:
                raise SystemExit(f"pyinfra ({method}): the {kind} converge failed (exit {status}):\n{tail}")
            row[kind] = took
        samples.setdefault(method, []).append(row)
    finally:
        bench.engine.remove_container(node.container_id)


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def med(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def pyinfra_table(samples: dict[str, list[dict[str, float]]], runner_start: list[float]) -> list[str]:
    now, before = list(PYINFRA_METHODS)
    rounds = min(len(samples[now]), len(samples[before]))
    head = f"{'pyinfra: examples/pyinfra':<44} {'channel':>10} {'exec each':>10} {'before/now':>11}"
    lines = [f"pyinfra: {rounds} fresh nodes per method, shuffled", head, "-" * len(head)]

    def row(label: str, pick: Callable[[dict[str, float]], float]) -> None:
        a = statistics.median(pick(r) for r in samples[now])
        b = statistics.median(pick(r) for r in samples[before])
        lines.append(f"{label:<44} {fmt(a):>10} {fmt(b):>10} {b / a:>10.2f}x")

    lines.append(
        f"{'  runner: pyinfra --version (python start-up)':<44} {fmt(statistics.median(runner_start)):>10}"
    )
    row("  tool start-up (converge of an empty deploy)", lambda r: r["start-up"])
    row("  in-node work, first converge", lambda r: r["first"] - r["start-up"])
    row("  in-node work, second converge", lambda r: r["second"] - r["start-up"])
    row("converge, first", lambda r: r["first"])
    row("converge, second (idempotence)", lambda r: r["second"])
    return lines


def in_node_table(name: str, samples: dict[str, Any]) -> list[str]:
    _provisioner, _remote, tool = IN_NODE[name]
    project = PROJECTS[name].relative_to(ROOT)
    lines = []
    firsts, seconds = samples.get("first", []), samples.get("second", [])
    cols = f"{'calls':>6} {'share':>6}"
    head = f"{f'{name}: {project}':<44} {'first':>10} {cols}   {'second':>10} {cols}"
    lines += [
        f"{name}: {len(firsts)} fresh node(s), first converge; {len(seconds)} second converges",
        head,
        "-" * len(head),
    ]
    labels_of = {
        "install": "  install / find the tool",
        "transfer": "  transfer (rm -rf + put_archive)",
        "run": f"  in-node work ({tool})",
    }
    for phase in PHASES:
        cells = []
        for rows in (firsts, seconds):
            if not rows:
                cells.append(f"{'-':>10} {'':>6} {'':>6}")
                continue
            m, total = med(rows, phase), med(rows, "total")
            calls = statistics.median(r["calls"][phase] for r in rows)
            cells.append(f"{fmt(m):>10} {calls:>6.0f} {m / total:>5.0%}")
        lines.append(f"{labels_of[phase]:<44} " + "   ".join(cells))
    rest = []
    for rows in (firsts, seconds):
        if rows:
            m = statistics.median(r["total"] - sum(r[ph] for ph in PHASES) for r in rows)
            rest.append(f"{fmt(m):>10} {'':>6} {m / med(rows, 'total'):>5.0%}")
        else:
            rest.append(f"{'-':>10} {'':>6} {'':>6}")
    lines.append(f"{'  rest (the provisioner in this process)':<44} " + "   ".join(rest))
    totals = [
        f"{fmt(med(rows, 'total')):>10} {'':>6} {'':>6}" if rows else f"{'-':>10}"
        for rows in (firsts, seconds)
    ]
    lines.append(f"{'converge':<44} " + "   ".join(totals))
    for n, installs in enumerate(samples.get("installs", []), 1):
        slow = [(c, t, st) for c, t, st in installs if t >= 0.5]
        lines += [
            f"  first converge {n}, install exec of 0.5 s or more: {t:.2f} s, exit {st}: ...{c}"
            for c, t, st in slow
        ]
    if samples.get("unavailable"):
        lines.append(f"  not run here: {samples['unavailable'][:160]}")
    return lines


def machine(engine: Engine) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return [
        f"host:    {platform.node()} {platform.system()} {platform.release()} {platform.machine()}",
        f"cpu:     {cpu} x {os.cpu_count()}",
        f"python:  {platform.python_version()}",
        f"docker:  {engine.describe()}",
        f"date:    {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "load:    {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rounds", type=int, default=3, help="pyinfra nodes per method; second converges per node"
    )
    parser.add_argument("--fresh", type=int, default=2, help="fresh nodes for puppet and chef")
    parser.add_argument("--salt-fresh", type=int, default=1, help="fresh nodes for salt (pip: minutes)")
    parser.add_argument("--only", default="pyinfra,puppet,salt,chef", help="provisioners, comma-separated")
    parser.add_argument("--out", help="a file the tables so far are written to after each job")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    engine = Engine.connect(None)
    lines = machine(engine)
    print("\n".join(lines), flush=True)
    image = engine.prepared_image(Catalog().get("debian-12"), say)[0]
    bench = Bench(engine, image)
    empty = Path(tempfile.mkdtemp(prefix="infranode-bench-prov-"))
    (empty / "empty.py").write_text("")
    jobs: list[tuple[str, str]] = []
    if "pyinfra" in only:
        jobs += [("pyinfra", m) for m in PYINFRA_METHODS for _ in range(args.rounds)]
    for name, fresh in (("puppet", args.fresh), ("chef", args.fresh), ("salt", args.salt_fresh)):
        if name in only:
            jobs += [(name, "")] * fresh
    random.Random(11).shuffle(jobs)
    samples: dict[str, dict[str, Any]] = {name: {} for name in PROJECTS}
    runner_start: list[float] = []
    tool = find_tool("pyinfra") or "pyinfra"
    try:
        for i, (name, method) in enumerate(jobs, 1):
            started = time.perf_counter()
            if name == "chef" and samples["chef"].get("unavailable"):
                continue  # no client here: one try says so
            try:
                if name == "pyinfra":
                    t0 = time.perf_counter()
                    subprocess.run([tool, "--version"], capture_output=True, check=False)
                    runner_start.append(time.perf_counter() - t0)
                    pyinfra_job(bench, method, empty, samples["pyinfra"])
                else:
                    in_node_job(bench, name, args.rounds, samples[name])
            except (SystemExit, Exception) as err:  # one provisioner failing leaves the others' figures
                samples[name].setdefault("errors", []).append(str(err)[-2000:])
                say(f"  job {i}/{len(jobs)}: {name} {method} FAILED: {str(err)[-2000:]}")
            say(f"  job {i}/{len(jobs)}: {name} {method} done in {time.perf_counter() - started:.0f} s")
            if args.out:
                Path(args.out).write_text("\n".join([*lines, *report(samples, runner_start)]) + "\n")
    finally:
        bench.cleanup()
        engine.close()
        shutil.rmtree(empty, ignore_errors=True)
    out = report(samples, runner_start)
    print("\n".join(out))
    return 0


def report(samples: dict[str, dict[str, Any]], runner_start: list[float]) -> list[str]:
    out: list[str] = []
    pyinfra_samples = samples["pyinfra"]
    if all(pyinfra_samples.get(m) for m in PYINFRA_METHODS):
        out += ["", *pyinfra_table(pyinfra_samples, runner_start)]
    for name in IN_NODE:
        if samples[name].get("first") or samples[name].get("second"):
            out += ["", *in_node_table(name, samples[name])]
    for name, got in samples.items():
        for error in got.get("errors", []):
            out += ["", f"{name}: a job failed: {error[-600:]}"]
    out += ["", "load at the end: {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
