"""What one Ansible task costs through the ``infranode`` connection plugin, against its floors.

    python benchmarks/ansible_tasks.py [--rounds N] [--tasks N] [--converge-rounds N]
                                       [--collections DIR]

1. Per task: a playbook of ``--tasks`` trivial tasks (``command: true``, one in six a small
   ``copy``) and the same playbook with its first task only, each round for each method, in a
   shuffled order; per task = (long - short) / (tasks - 1), so start-up, fact-free play set-up and
   the interpreter discovery of the first task fall out. Methods:

   - ``local``: ansible's ``local`` connection on this machine (no container at all, the floor);
   - ``infranode, exec per command``: the plugin as it was (no pipelining, one exec per step);
   - ``infranode, pipelining + channel per task``: no relay (``ansible`` run by hand);
   - ``infranode, pipelining + relay``: what the provisioner runs (the channels outlive the tasks);
   - ``community.docker.docker``: Molecule's connection (the docker CLI, one ``docker exec``
     per command), with Molecule's default (no pipelining) and with pipelining. The collection
     comes from ``--collections`` (an ANSIBLE_COLLECTIONS_PATH holding community.docker), or is
     unpacked from the ``ansible`` wheel pip downloads; without it the rows are left out.

2. The converge of examples/ansible (``pytest examples/ansible``, the converge column of the
   node summary), the plugin as it was (``INFRANODE_ANSIBLE_CHANNEL=false ANSIBLE_PIPELINING=false``)
   against now.

Prints medians and ratios from one run; asserts no duration. The node is a container of the
prepared debian-12 image (``sleep`` as PID 1: the tasks need no init) under a label of this run,
removed at the end, with the temporary directories.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import docker

from pytest_infranode.engine import Engine
from pytest_infranode.platforms import Catalog
from pytest_infranode.provisioners._relay import RELAY_ENV
from pytest_infranode.provisioners._relay import ChannelRelay
from pytest_infranode.provisioners.ansible import PLUGINS

ROOT = Path(__file__).resolve().parent.parent
BENCH_LABEL = "org.pytest-infranode.benchmark"
ANSIBLE_PLAYBOOK = (
    shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
)
ANSIBLE_WHEEL = "ansible==12.3.0"
"""The Ansible release whose wheel bundles community.docker (Molecule's docker driver uses it)."""


def playbook(tasks: int, work: Path) -> str:
    lines = ["- hosts: all", "  gather_facts: false", "  tasks:"]
    for i in range(tasks):
        if i % 6 == 5:
            lines += [
                f"    - name: copy {i}",
                "      copy:",
                f"        content: 'file {i}\\n'",
                f"        dest: {work}/copied-{i}.txt",
            ]
        else:
            lines += [f"    - name: command {i}", "      command: 'true'"]
    return "\n".join(lines) + "\n"


def collections_path(option: str | None, work: Path, say: Callable[[str], None]) -> Path | None:
    """An ANSIBLE_COLLECTIONS_PATH with community.docker, or None when it cannot be had."""
    if option:
        return Path(option)
    into = work / "collections"
    say(f"community.docker: pip download {ANSIBLE_WHEEL} (no dependencies) and unpack the collection")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "-d",
            str(work / "wheel"),
            ANSIBLE_WHEEL,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = list((work / "wheel").glob("ansible-*.whl"))
    if done.returncode != 0 or not wheels:
        say(f"community.docker: cannot be had ({done.stderr.strip()[-300:]}); its rows are left out")
        return None
    with zipfile.ZipFile(wheels[0]) as wheel:
        wanted = [n for n in wheel.namelist() if n.startswith("ansible_collections/community/docker/")]
        wheel.extractall(into, wanted)
    return into


class Bench:
    def __init__(self, work: Path, container: str, collections: Path | None) -> None:
        self.work = work
        self.container = container
        self.collections = collections
        self.node_dir = "/tmp/bench"
        self.relay: ChannelRelay | None = None

    def inventory(self, name: str, variables: dict[str, str]) -> Path:
        path = self.work / f"{name}.ini"
        line = " ".join(f"{k}={v}" for k, v in variables.items())
        path.write_text(f"[all]\nh {line}\n")
        return path

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            **os.environ,
            "ANSIBLE_CONNECTION_PLUGINS": str(PLUGINS / "connection"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
        }
        for key in ("ANSIBLE_PIPELINING", "INFRANODE_ANSIBLE_CHANNEL", RELAY_ENV):
            env.pop(key, None)
        if self.collections is not None:
            env["ANSIBLE_COLLECTIONS_PATH"] = str(self.collections)
        env.update(extra)
        return env

    def methods(self) -> dict[str, tuple[Path, dict[str, str], str]]:
        """name -> (inventory, environment, the directory the copies go to)."""
        local_dir = self.work / "local"
        local_dir.mkdir(exist_ok=True)
        node = {"ansible_host": self.container, "ansible_python_interpreter": "/usr/bin/python3"}
        infranode = self.inventory("infranode", {"ansible_connection": "infranode", **node})
        found: dict[str, tuple[Path, dict[str, str], str]] = {
            "local": (
                self.inventory(
                    "local", {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                ),
                self.env({}),
                str(local_dir),
            ),
            "infranode, exec per command": (
                infranode,
                self.env({"ANSIBLE_PIPELINING": "false", "INFRANODE_ANSIBLE_CHANNEL": "false"}),
                self.node_dir,
            ),
            "infranode, pipelining + channel per task": (infranode, self.env({}), self.node_dir),
        }
        if self.relay is not None:
            found["infranode, pipelining + relay"] = (
                infranode,
                self.env({RELAY_ENV: self.relay.address}),
                self.node_dir,
            )
        if self.collections is not None:
            docker_inventory = self.inventory(
                "docker", {"ansible_connection": "community.docker.docker", **node}
            )
            found["community.docker.docker"] = (
                docker_inventory,
                self.env({"ANSIBLE_PIPELINING": "false"}),
                self.node_dir,
            )
            found["community.docker.docker, pipelining"] = (
                docker_inventory,
                self.env({"ANSIBLE_PIPELINING": "true"}),
                self.node_dir,
            )
        return found

    def run(self, inventory: Path, env: dict[str, str], book: Path) -> float:
        start = time.perf_counter()
        done = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(book)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(
                f"ansible-playbook {book.name} with {inventory.name} failed:\n{done.stdout[-3000:]}"
            )
        return took


def per_task(bench: Bench, tasks: int, rounds: int, skip: set[str]) -> list[str]:
    methods = {name: m for name, m in bench.methods().items() if name not in skip}
    books: dict[str, tuple[Path, Path]] = {}
    for name, (_inventory, _env, into) in methods.items():
        safe = re.sub(r"\W+", "-", name)
        long, short = bench.work / f"{safe}-long.yml", bench.work / f"{safe}-short.yml"
        long.write_text(playbook(tasks, Path(into)))
        short.write_text(playbook(1, Path(into)))
        books[name] = (long, short)
    times: dict[str, list[float]] = {name: [] for name in methods}
    order = list(methods)
    shuffler = random.Random(7)
    for name in order:  # warm-up: the page cache, the first shell
        inventory, env, _into = methods[name]
        bench.run(inventory, env, books[name][1])
    for i in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            inventory, env, _into = methods[name]
            long = bench.run(inventory, env, books[name][0])
            short = bench.run(inventory, env, books[name][1])
            times[name].append((long - short) / (tasks - 1))
        print(f"  round {i + 1}/{rounds} done", file=sys.stderr)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    before = medians["infranode, exec per command"]
    head = f"{'per task':<42} {'median':>9} {'min':>9} {'max':>9} {'x local':>9} {'faster than before':>19}"
    lines = [
        f"1. per task: {tasks} tasks (one in six a copy) minus the first, {rounds} rounds, interleaved",
        head,
        "-" * len(head),
    ]
    for name, ts in times.items():
        lines.append(
            f"{name:<42} {fmt(medians[name]):>9} {fmt(min(ts)):>9} {fmt(max(ts)):>9}"
            f" {medians[name] / medians['local']:>8.2f}x {before / medians[name]:>18.2f}x"
        )
    return lines


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


SUMMARY_ROW = re.compile(r"^\s*debian-12\s")


def converge_seconds(output: str) -> float:
    """The converge column of the node summary's debian-12 row."""
    header = next(
        (line for line in output.splitlines() if " converge " in f" {line} " and "platform" in line), ""
    )
    row = next((line for line in output.splitlines() if SUMMARY_ROW.match(line)), "")
    if not header or not row:
        raise SystemExit(f"no node summary in the pytest output:\n{output[-3000:]}")
    column = header.split().index("converge")
    value = row.split()[column]
    return float(value.rstrip("s"))


def converge(rounds: int) -> list[str]:
    variants = {
        "before (exec per command)": {"INFRANODE_ANSIBLE_CHANNEL": "false", "ANSIBLE_PIPELINING": "false"},
        "now (pipelining + relay)": {},
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    shuffler = random.Random(3)
    for i in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            env = {**os.environ, **variants[name]}
            for key in ("ANSIBLE_PIPELINING", "INFRANODE_ANSIBLE_CHANNEL"):
                if key not in variants[name]:
                    env.pop(key, None)
            start = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "--infra-platform=debian-12",
                    "-q",
                ],
                cwd=ROOT / "examples" / "ansible",
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            walls[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"pytest examples/ansible ({name}) failed:\n{done.stdout[-4000:]}")
            times[name].append(converge_seconds(done.stdout))
        print(f"  converge round {i + 1}/{rounds} done", file=sys.stderr)
    head = f"{'examples/ansible, debian-12':<42} {'converge':>9} {'min':>9} {'max':>9}"
    head += f" {'whole run':>10} {'ratio':>8}"
    lines = [f"2. the converge of examples/ansible, {rounds} rounds, interleaved", head, "-" * len(head)]
    first = statistics.median(times[next(iter(variants))])
    for name in variants:
        med = statistics.median(times[name])
        lines.append(
            f"{name:<42} {fmt(med):>9} {fmt(min(times[name])):>9} {fmt(max(times[name])):>9}"
            f" {fmt(statistics.median(walls[name])):>10} {first / med:>7.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=31)
    parser.add_argument("--converge-rounds", type=int, default=3)
    parser.add_argument("--collections", help="an ANSIBLE_COLLECTIONS_PATH holding community.docker")
    parser.add_argument(
        "--skip",
        default="",
        help="methods of section 1 to leave out, by name, separated by semicolons (names hold commas)",
    )
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    token = uuid.uuid4().hex[:10]
    work = Path(tempfile.mkdtemp(prefix="infranode-bench-ansible-"))
    client = docker.from_env()
    engine = Engine.connect(None)
    lines: list[str] = []
    try:
        (work / "tmp").mkdir()
        collections = collections_path(args.collections, work, say)
        if args.rounds:
            image = engine.prepared_image(Catalog().get("debian-12"), say)[0]
            container = client.containers.run(
                image,
                entrypoint=["sleep", "infinity"],
                detach=True,
                labels={BENCH_LABEL: token},
                name=f"infranode-bench-ansible-{token}",
            )
            container.exec_run(["mkdir", "-p", "/tmp/bench"])
            bench = Bench(work, container.name, collections)
            with ChannelRelay(engine, {container.name: container.name}) as relay:
                bench.relay = relay
                lines += per_task(
                    bench, args.tasks, args.rounds, {s.strip() for s in args.skip.split(";") if s.strip()}
                )
        if args.converge_rounds:
            lines += ["", *converge(args.converge_rounds)]
        versions = subprocess.run(
            [ANSIBLE_PLAYBOOK, "--version"], capture_output=True, text=True, check=False
        )
        lines += [
            "",
            f"{versions.stdout.splitlines()[0] if versions.stdout else 'ansible-playbook ?'}; "
            f"community.docker from {ANSIBLE_WHEEL if collections and not args.collections else collections}",
            f"load at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)",
        ]
        print("\n".join(lines))
    finally:
        for leftover in client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={token}"}):
            leftover.remove(force=True, v=True)
        client.close()
        engine.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
