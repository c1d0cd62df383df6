"""Timings of pytest-infranode against the floors beneath it, measured side by side.

    python benchmarks/run.py [--rounds N] [--suite-rounds N] [--molecule] [--docker-host URL]

0. pytest start-up with the plugin installed and no platforms, against `-p no:infranode`;
1. one check (and 25 in a row) on a booted node: the raw exec API, testinfra `docker://`, ours
   through the exec channel and through one exec per command, a bare persistent shell (with and
   without a subshell per command);
2. a warm suite (node up, shell converge of examples/nginx, 25 checks, teardown): our `pytest`
   against the same steps done with docker-py, one exec per step;
3. cold vs warm vs converge-cache hit; 4. one platform vs three at once and one after another;
5. with --molecule: `molecule test` of examples/ansible's role vs our `pytest` of it (with and
   without --infra-idempotence); 5b. on an existing instance, `molecule converge && molecule
   verify` (and verify alone) vs our `pytest --infra-reuse` on a kept node.
Goal lines (#22) are printed from the run's medians.

Needs a Docker daemon with the debian:12 and debian:13 images (or a registry to pull them).
Prints medians over N rounds and ratios; each round runs every method once, in a shuffled
order, so that the machine's noise falls on all of them alike. Nothing here asserts a
duration. Everything it makes (containers, images, temp dirs) is removed at the end; the
Molecule venv is kept for the next run. `--rounds 0` or `--suite-rounds 0` skip sections.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import testinfra
import yaml

from pytest_infranode import labels
from pytest_infranode.backend import NodeBackend
from pytest_infranode.backend import make_host
from pytest_infranode.boot import BOOT_WAIT
from pytest_infranode.boot import BOOT_WAIT_INTERVAL
from pytest_infranode.channel import FrameDecoder
from pytest_infranode.channel import runs_in_place
from pytest_infranode.engine import Engine
from pytest_infranode.engine.containers import tar_files
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


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "nginx"
ANSIBLE_EXAMPLE = ROOT / "examples" / "ansible"
MOLECULE_SCENARIO = Path(__file__).resolve().parent / "molecule" / "default"
BENCH_LABEL = "org.pytest-infranode.benchmark"
"""On every container and image this script makes itself (the plugin's carry their own labels)."""

# The 25 checks of the warm suite (section 2), each as a testinfra expression (our pytest
# session asserts it) and as one shell command that exits 0 when it holds (the floor runs it
# as one exec). They cover what the nginx example's converge made.
SITE_CONF = "/etc/nginx/sites-available/site.conf"
SUITE_CHECKS: list[tuple[str, str]] = [
    ('host.package("nginx").is_installed', "dpkg-query -W -f='${Status}' nginx | grep -q 'ok installed'"),
    ('host.package("curl").is_installed', "dpkg-query -W -f='${Status}' curl | grep -q 'ok installed'"),
    ('host.package("systemd").is_installed', "dpkg-query -W -f='${Status}' systemd | grep -q 'ok installed'"),
    ('host.service("nginx").is_running', "systemctl is-active -q nginx"),
    ('host.service("nginx").is_enabled', "systemctl is-enabled -q nginx"),
    ('host.service("systemd-journald").is_running', "systemctl is-active -q systemd-journald"),
    ('host.socket("tcp://0.0.0.0:80").is_listening', "ss -Htln | grep -q ' 0.0.0.0:80 '"),
    (f'host.file("{SITE_CONF}").is_file', f"test -f {SITE_CONF}"),
    (f'host.file("{SITE_CONF}").user == "root"', f'test "$(stat -c %U {SITE_CONF})" = root'),
    (f'host.file("{SITE_CONF}").group == "www-data"', f'test "$(stat -c %G {SITE_CONF})" = www-data'),
    (f'host.file("{SITE_CONF}").mode == 0o640', f'test "$(stat -c %a {SITE_CONF})" = 640'),
    (
        'not host.file("/etc/nginx/sites-enabled/default").exists',
        "test ! -e /etc/nginx/sites-enabled/default",
    ),
    (
        'host.file("/etc/nginx/sites-enabled/site.conf").is_symlink',
        "test -L /etc/nginx/sites-enabled/site.conf",
    ),
    (
        'host.file("/etc/nginx/nginx.conf").contains("worker_processes")',
        "grep -qs worker_processes /etc/nginx/nginx.conf",
    ),
    ('host.file("/srv/www").is_directory', "test -d /srv/www"),
    ('host.file("/srv/www/index.html").mode == 0o644', 'test "$(stat -c %a /srv/www/index.html)" = 644'),
    (
        'host.file("/srv/www/index.html").contains("infranode-demo")',
        "grep -qs infranode-demo /srv/www/index.html",
    ),
    ('host.run("nginx -t").rc == 0', "nginx -t"),
    (
        '"Hello from infranode-demo" in host.check_output("curl -fsS http://localhost/")',
        "curl -fsS http://localhost/ | grep -q 'Hello from infranode-demo'",
    ),
    (
        '"X-Served-By: infranode" in host.check_output("curl -fsSI http://localhost/")',
        "curl -fsSI http://localhost/ | grep -q 'X-Served-By: infranode'",
    ),
    ('host.process.filter(comm="nginx", user="www-data")', "ps -C nginx -o user= | grep -qx www-data"),
    ('host.file("/proc/1/comm").content_string.strip() == "systemd"', 'test "$(cat /proc/1/comm)" = systemd'),
    ('host.system_info.distribution == "debian"', "grep -q '^ID=debian' /etc/os-release"),
    ('host.user("www-data").exists', "id www-data"),
    ('host.group("www-data").exists', "getent group www-data"),
]


def suite_test_file() -> str:
    """The 25 checks as a pytest module, one test each (what a user would write)."""
    out = ['"""The 25 checks of benchmarks/run.py section 2 (generated)."""', ""]
    for i, (expr, _) in enumerate(SUITE_CHECKS, 1):
        out += ["", f"def test_check_{i:02d}(host):", f"    assert {expr}", ""]
    return "\n".join(out)


class SdkFloor:
    """Section 2's floor: the suite's steps done directly with docker-py, one exec per step.

    Create and start a container from the prepared image the plugin uses, with the options of
    an infranode systemd node (pytest_infranode/engine/containers.py: SYS_ADMIN, tmpfs on /run,
    /run/lock and /tmp, the host cgroup namespace with /sys/fs/cgroup bound rw, a terminal, the
    systemd stop signal); wait for systemd with the plugin's in-node wait (one exec asking
    ``systemctl is-system-running`` every 50 ms); copy converge.sh in with put_archive and exec it with the
    example's env; 25 checks, one exec_run each (or ``checks``); remove.
    """

    def __init__(
        self,
        image: str,
        script: bytes,
        env: dict[str, str],
        token: str,
        checks: list[tuple[str, str]] = SUITE_CHECKS,
    ) -> None:
        self.client = docker.from_env()
        self.image, self.script, self.env, self.token = image, script, env, token
        self.checks = checks
        self.phases: dict[str, list[float]] = {}

    def run(self) -> float:
        clock = time.perf_counter
        marks = [("start", clock())]
        name = f"infranode-bench-floor-{uuid.uuid4().hex[:8]}"
        container = self.client.containers.create(
            self.image,
            name=name,
            hostname=name,
            labels={BENCH_LABEL: self.token},
            detach=True,
            tty=True,
            stdin_open=False,
            environment={"container": "docker"},
            cap_add=["SYS_ADMIN"],
            tmpfs={
                "/run": "rw,nosuid,nodev,exec,mode=755",
                "/run/lock": "rw,nosuid,nodev,noexec,mode=1777",
                "/tmp": "rw,nosuid,nodev,exec,mode=1777",
            },
            cgroupns="host",
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            stop_signal="SIGRTMIN+3",
            command=["/sbin/init"],
        )
        try:
            container.start()
            marks.append(("create + start", clock()))
            # As the plugin waits: one exec that asks systemd every 50 ms until it is up.
            _, out = container.exec_run(["/bin/sh", "-c", BOOT_WAIT, "sh", "2400", str(BOOT_WAIT_INTERVAL)])
            # The first line is systemd's state; the plugin's wait then probes the sandbox too.
            if out.decode(errors="replace").strip().partition("\n")[0] not in ("running", "degraded"):
                raise SystemExit(f"floor: systemd did not boot in 120 s: {out!r}")
            marks.append(("boot (wait in the node)", clock()))
            workdir = "/var/lib/infranode/provision"
            container.put_archive("/", tar_files({f"{workdir[1:]}/00-converge.sh": (self.script, 0o755)}))
            rc, out = container.exec_run(
                ["/bin/sh", f"{workdir}/00-converge.sh"], environment=self.env, workdir=workdir
            )
            if rc != 0:
                raise SystemExit(f"floor: converge failed ({rc}):\n{out.decode(errors='replace')[-2000:]}")
            marks.append(("put_archive + converge exec", clock()))
            for _, command in self.checks:
                rc, out = container.exec_run(["/bin/sh", "-c", command])
                if rc != 0:
                    raise SystemExit(f"floor: check {command!r} failed ({rc}): {out!r}")
            marks.append((f"{len(self.checks)} checks (1 exec_run each)", clock()))
        finally:
            container.remove(force=True, v=True)
        marks.append(("remove", clock()))
        for (_, before), (phase, after) in itertools.pairwise(marks):
            self.phases.setdefault(phase, []).append(after - before)
        return marks[-1][1] - marks[0][1]

    def sweep(self) -> None:
        """Remove any floor container a failed round left behind; close the client."""
        for container in self.client.containers.list(
            all=True, filters={"label": f"{BENCH_LABEL}={self.token}"}
        ):
            container.remove(force=True, v=True)
        self.client.close()


class Molecule:
    """Section 5: ``molecule test`` of examples/ansible's role, with its own venv and image."""

    PACKAGES = (
        "molecule>=25",
        "molecule-plugins[docker]>=23.5",
        "ansible>=9",
        "docker>=7",
        "pytest-testinfra>=10",
    )
    """`ansible` (not only ansible-core) bundles community.docker, which the docker driver uses:
    Ansible Galaxy is not needed (the scenario's dependency step is a no-op)."""

    def __init__(self, work: Path, token: str, venv: Path, prepared: str) -> None:
        self.venv, self.token, self.prepared = venv, token, prepared
        self.project = work / "ansible-molecule"
        self.image = f"infranode-bench/molecule-debian-12:{token}"
        self.client = docker.from_env()
        self.tagged = False
        self.existing_made = False

    def setup(self, say: Callable[[str], None]) -> None:
        """Make the venv (once per machine), the image's tag and the project copy."""
        molecule = self.venv / "bin" / "molecule"
        if not molecule.exists():
            say(f"molecule: installing {', '.join(self.PACKAGES)} into {self.venv} (once)")
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
            done = subprocess.run(
                [str(self.venv / "bin" / "pip"), "install", "-q", *self.PACKAGES],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0 or not molecule.exists():
                shutil.rmtree(self.venv, ignore_errors=True)
                raise RuntimeError(f"pip install into {self.venv} failed:\n{done.stderr[-2000:]}")
        # The image: the prepared debian-12 image infranode's own nodes start from (systemd as
        # PID 1: the role manages nginx with ansible.builtin.systemd_service), under a tag of
        # this run; removing the tag afterwards leaves the prepared image as it was.
        repository, tag = self.image.split(":")
        self.client.images.get(self.prepared).tag(repository, tag)
        say(f"molecule: {self.image} is the prepared debian-12 image {self.prepared[:19]}")
        self.tagged = True
        shutil.copytree(
            ANSIBLE_EXAMPLE, self.project, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__")
        )
        with open(self.project / "site.yml", "a") as playbook:
            playbook.write(f"# benchmark {self.token}\n")  # our converge key of its own: no other kept node
        shutil.copytree(MOLECULE_SCENARIO, self.project / "molecule" / "default")
        # The existing instance's scenario: the same, on a container of its own name (the
        # docker driver names the container after the platform; `molecule test` destroys its
        # own at every round), so that both can be timed in one run.
        existing = self.project / "molecule" / self.EXISTING
        shutil.copytree(MOLECULE_SCENARIO, existing)
        scenario = yaml.safe_load((existing / "molecule.yml").read_text())
        scenario["platforms"][0]["name"] = self.EXISTING_HOST
        host_vars = scenario["provisioner"]["inventory"]["host_vars"]
        host_vars[self.EXISTING_HOST] = {"served_by": f"infranode-{self.EXISTING_HOST}"}
        del host_vars["debian-12"]
        (existing / "molecule.yml").write_text(yaml.safe_dump(scenario, sort_keys=False))

    def versions(self) -> str:
        done = subprocess.run(
            [str(self.venv / "bin" / "pip"), "list", "--format=freeze"],
            capture_output=True,
            text=True,
            check=False,
        )
        wanted = ("molecule", "molecule-plugins", "ansible", "ansible-core")
        return " ".join(line for line in done.stdout.split() if line.split("==")[0] in wanted)

    EXISTING = "existing"
    """The scenario of the existing instance (``molecule converge && molecule verify``)."""
    EXISTING_HOST = "debian-12-existing"

    def _run(self, *args: str) -> float:
        """One ``molecule`` command in the project; its wall time. A failure ends the benchmark."""
        env = {
            **os.environ,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.venv),
            "MOLECULE_BENCH_IMAGE": self.image,
            "MOLECULE_BENCH_LABEL": self.token,
            "ANSIBLE_FORCE_COLOR": "0",
            "PY_COLORS": "0",
        }
        start = time.perf_counter()
        done = subprocess.run(
            [str(self.venv / "bin" / "molecule"), *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(
                f"molecule {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
            )
        return took

    def test(self) -> float:
        return self._run("test")

    def create_existing(self) -> None:
        """The existing instance, outside the timed part: create, prepare, a first converge and a
        verify (so a scenario that no longer converges or verifies fails here, before timing)."""
        self.existing_made = True
        for step in ("create", "prepare", "converge", "verify"):
            self._run(step, "-s", self.EXISTING)

    def converge_verify(self) -> float:
        """``molecule converge && molecule verify`` on the existing instance."""
        return self._run("converge", "-s", self.EXISTING) + self._run("verify", "-s", self.EXISTING)

    def verify(self) -> float:
        """``molecule verify`` alone on the existing instance: the work of our reuse run."""
        return self._run("verify", "-s", self.EXISTING)

    def cleanup(self) -> None:
        if self.existing_made:
            try:
                self._run("destroy", "-s", self.EXISTING)
            except SystemExit as exc:  # the label sweep below removes the container anyway
                print(f"molecule destroy -s {self.EXISTING}: {exc}", file=sys.stderr)
        for container in self.client.containers.list(
            all=True, filters={"label": f"{BENCH_LABEL}={self.token}"}
        ):
            container.remove(force=True, v=True)
        if self.tagged:
            try:
                self.client.images.remove(self.image)
            except docker.errors.APIError as exc:
                print(f"could not remove image {self.image}: {exc}", file=sys.stderr)
        self.client.close()


class KeptNode:
    """Section 5's existing instance on our side: a node kept by a first, untimed session
    (``--infra-keep=always``), taken over by every timed ``--infra-reuse`` session.

    ``run`` fails the benchmark unless the timed session took over that very container (a new
    node would be a whole converge, not a reuse); ``cleanup`` removes the kept node, any node a
    failed round kept, and claim markers left on it.
    """

    def __init__(self, session: Callable[..., float], project: Path) -> None:
        self.session, self.project = session, project
        self.client = docker.from_env()
        self.container_id = ""
        self.key = ""

    def _kept(self) -> list[docker.models.containers.Container]:
        return self.client.containers.list(all=True, filters={"label": f"{labels.CONVERGE}={self.key}"})

    def setup(self) -> None:
        before = {c.id for c in self.client.containers.list(all=True, filters={"label": labels.CONVERGE})}
        self.session("--infra-keep=always", cwd=self.project)
        # This run's project copy has a converge input of its own (the token in site.yml), so
        # its kept node is the one new container carrying a converge key.
        new = [
            c
            for c in self.client.containers.list(all=True, filters={"label": labels.CONVERGE})
            if c.id not in before and c.name.endswith("-kept") and not c.labels.get(labels.CLAIM)
        ]
        if len(new) != 1:
            raise SystemExit(f"--infra-keep=always kept {len(new)} nodes, not one: {[c.name for c in new]}")
        self.container_id, self.key = new[0].id, new[0].labels[labels.CONVERGE]

    def run(self) -> float:
        took = self.session("--infra-reuse", "--infra-keep=always", cwd=self.project)
        nodes = [c for c in self._kept() if not c.labels.get(labels.CLAIM)]
        if [c.id for c in nodes] != [self.container_id] or nodes[0].status != "running":
            raise SystemExit(
                f"--infra-reuse did not take over the kept node {self.container_id[:12]}:"
                f" {[(c.name, c.status) for c in nodes]}"
            )
        return took

    def cleanup(self) -> None:
        if self.key:
            for container in self._kept():
                container.remove(force=True, v=True)
        if self.container_id:
            claims = self.client.containers.list(
                all=True, filters={"label": f"{labels.CLAIM}={self.container_id}"}
            )
            for container in claims:
                container.remove(force=True, v=True)
        self.client.close()


def molecule_venv(option: str | None) -> Path:
    return Path(option) if option else Path(tempfile.gettempdir()) / "infranode-bench-molecule"


def _median_table(
    title: str, times: dict[str, list[float]], refs: dict[str, tuple[str, str]], width: int = 48
) -> list[str]:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    head = f"{title:<{width}} {'median':>9} {'min':>9} {'max':>9} {'ratio':>24}"
    lines = [head, "-" * len(head)]
    for name, ts in times.items():
        ref, label = refs.get(name, ("", ""))
        ratio = f"{med[name] / med[ref]:.2f} {label}" if ref else ""
        lines.append(f"{name:<{width}} {fmt(med[name]):>9} {fmt(min(ts)):>9} {fmt(max(ts)):>9} {ratio:>24}")
    return lines


def node_phases(stdout: str) -> dict[str, float]:
    """The seconds of the first node in the summary table a session printed (its boot, converge
    and ready columns: the plugin's own timing); {} without one. Pure."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines[:-1]):
        head = line.split()
        if head[:1] == ["platform"] and {"boot", "converge", "ready"} <= set(head):
            cells = dict(zip(head, lines[i + 1].split(), strict=False))
            return {
                col: float(cells[col].removesuffix("s"))
                for col in ("boot", "converge", "ready")
                if cells.get(col, "-").removesuffix("s").replace(".", "", 1).isdigit()
            }
    return {}


def phase_lines(runs: dict[str, tuple[float, list[dict[str, float]]]]) -> list[str]:
    """Where our runs' time went, from the node tables (medians): boot, converge, the rest of
    ``ready`` (image look-up, the idempotence converge, side effect), and what is not the node's
    (interpreter, plugin, collection, the tests, teardown, report). Pure."""
    out = []
    for name, (whole, rows) in runs.items():
        boot, converge, ready = (
            statistics.median([r[c] for r in rows if c in r] or [0.0]) for c in ("boot", "converge", "ready")
        )
        out.append(
            f"   {name}: boot {fmt(boot)}, converge {fmt(converge)},"
            f" rest of ready {fmt(max(ready - boot - converge, 0.0))} (idempotence, image look-up),"
            f" not the node's {fmt(max(whole - ready, 0.0))} (pytest, tests, teardown)"
        )
    return out


def goal_line(what: str, ratio: float, sense: str, goal: float) -> str:
    """``what = N.NNx (goal >= Gx: met)``, from the medians of this run. Pure."""
    met = ratio >= goal if sense == ">=" else ratio <= goal
    return f"goal: {what} = {ratio:.2f}x (goal {sense} {goal:g}x: {'met' if met else 'missed'})"


def busy_cpu_seconds() -> float | None:
    """CPU time the whole machine has spent busy (all CPUs), from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    busy = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8) if i < len(fields))
    return busy / os.sysconf("SC_CLK_TCK")


FLOOR = "floor: docker-py, 1 exec per step"
OURS_25 = "infranode: pytest, the same 25 checks"
COLD = "cold (image build + converge)"
WARM = "warm (converge) = one platform"
HIT = "converge-cache hit"
THREE = "three platforms at once (--infra-parallel=3)"
THREE_SERIAL = "three platforms, --infra-parallel=1"
MOLECULE = "molecule test (create..destroy)"
OURS_IDEM = "infranode: pytest --infra-idempotence"
OURS_ANSIBLE = "infranode: pytest"
MOL_EXISTING = "molecule converge && molecule verify"
MOL_VERIFY = "molecule verify"
OURS_REUSE = "infranode: pytest --infra-reuse"
THREE_PLATFORMS = "--infra-platform=debian-12,debian-13,debian-12b"
FLOOR_ONE = "floor: docker-py, debian-12"
FLOOR_THREE = "floor: docker-py, the three at once"


def floor_at_once(floors: list[SdkFloor]) -> float:
    """Run each floor's steps in a thread of its own, all at once; the wall time of the slowest."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(floors)) as pool:
        for future in [pool.submit(floor.run) for floor in floors]:
            future.result()  # a failed round fails the benchmark, as a failed session does
    return time.perf_counter() - start


def sessions(engine: Engine, rounds: int, molecule: Path | None = None) -> list[str]:
    """Whole runs, each a subprocess (the floor in this process), interleaved per round.

    2. a warm suite: our `pytest` of the nginx example with 25 checks against the same steps
       done with docker-py (:class:`SdkFloor`);
    3. cold: the prepared image is built (a recipe of its own each round: the default one plus a
       no-op step), then converge; warm: prepared image cached, converge runs; converge-cache
       hit: ``--infra-cache=converge`` with an image of this exact converge;
    4. one platform (the warm run) against three (debian-12, debian-13 and debian-12b, a
       ``platform_definitions:`` copy of debian-12) at once and one after another; and the
       machine's floor for that ratio: the same create, boot, converge and remove done with
       docker-py alone for debian-12, and for debian-12, debian-13 and debian-12 in three threads;
    5. with ``molecule``: ``molecule test`` of examples/ansible's role against our `pytest` of
       examples/ansible (with and without ``--infra-idempotence``, which molecule always does);
       and on an existing instance (made outside the timed part on both sides), ``molecule
       converge && molecule verify`` and ``molecule verify`` against ``--infra-reuse`` on a
       kept node (:class:`KeptNode`).
    """
    work = Path(tempfile.mkdtemp(prefix="infranode-bench-"))
    token = uuid.uuid4().hex[:10]
    shutil.copytree(EXAMPLE, work / "nginx", ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    project = work / "nginx"
    with open(project / "converge.sh", "a") as script:
        script.write(f"# benchmark {token}\n")  # a converge key of its own
    (project / "test_bench25.py").write_text(suite_test_file())
    script_bytes = (project / "converge.sh").read_bytes()
    script_hash = hashlib.sha256(script_bytes).hexdigest()
    config = (project / "infranode.yaml").read_text()
    before = {i.id for i in engine.list_images(labels.PLATFORM)}
    default_prepare = Catalog().get("debian-12").prepare
    cold_platforms: list[str] = []

    def say(msg: str) -> None:
        print(msg, file=sys.stderr)

    prepared = engine.prepared_image(Catalog().get("debian-12"), say)[0]
    floor = SdkFloor(
        prepared,
        script_bytes,
        {"SITE_NAME": "infranode-demo"},
        token,
    )
    prepared_13 = engine.prepared_image(Catalog().get("debian-13"), say)[0]
    env = {"SITE_NAME": "infranode-demo"}
    # No checks: ours run test_web.py's 11 through the channel in milliseconds; an exec each
    # would put half a second of waiting into the floor that ours does not have.
    floors_of_three = [SdkFloor(i, script_bytes, env, token, []) for i in (prepared, prepared_13, prepared)]
    notes: list[str] = []
    mol: Molecule | None = None
    kept: KeptNode | None = None
    if molecule is not None:
        mol = Molecule(work, token, molecule, prepared)
        try:
            mol.setup(say)
            notes.append(f"molecule: {mol.versions()}; image {mol.image}, the prepared debian-12 image")
        except Exception as exc:  # say why, measure the rest
            notes.append(f"molecule test: NOT measured: {type(exc).__name__}: {str(exc).strip()[-1500:]}")
            mol.cleanup()
            mol = None
    ansible_project = mol.project if mol else work
    last_stdout = [""]  # of the latest session: its node table says where the time went

    def session(*args: str, cwd: Path = project, platform_yaml: str = "") -> float:
        if cwd == project:
            defs = "platform_definitions:\n  debian-12b:\n    base: debian-12\n" + platform_yaml
            (project / "infranode.yaml").write_text(config + defs)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        took = time.perf_counter() - start
        last_stdout[0] = done.stdout
        if done.returncode != 0:
            raise SystemExit(
                f"benchmark session {args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            )
        return took

    def cold() -> float:
        name = f"bench-cold-{uuid.uuid4().hex[:8]}"
        cold_platforms.append(name)
        steps = ", ".join(f"{step!r}" for step in (*default_prepare, f"true {name}"))
        yaml = f"  {name}:\n    base: debian-12\n    prepare: [{steps}]\n"
        return session(f"--infra-platform={name}", "test_web.py", platform_yaml=yaml)

    runs: dict[str, Callable[[], float]] = {
        FLOOR: floor.run,
        OURS_25: lambda: session("--infra-platform=debian-12", "test_bench25.py"),
        COLD: cold,
        WARM: lambda: session("--infra-platform=debian-12", "test_web.py"),
        HIT: lambda: session("--infra-platform=debian-12", "--infra-cache=converge", "test_web.py"),
        THREE: lambda: session(THREE_PLATFORMS, "--infra-parallel=3", "test_web.py"),
        THREE_SERIAL: lambda: session(THREE_PLATFORMS, "--infra-parallel=1", "test_web.py"),
        FLOOR_ONE: floors_of_three[0].run,
        FLOOR_THREE: lambda: floor_at_once(floors_of_three),
    }
    if mol is not None:
        runs[MOLECULE] = mol.test
        runs[OURS_IDEM] = lambda: session("--infra-idempotence", cwd=ansible_project)
        runs[OURS_ANSIBLE] = lambda: session(cwd=ansible_project)
        kept = KeptNode(session, ansible_project)  # mol and kept: both or neither
        runs[MOL_EXISTING] = mol.converge_verify
        runs[MOL_VERIFY] = mol.verify
        runs[OURS_REUSE] = kept.run
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}  # busy CPU-seconds of the machine
    phases: dict[str, list[dict[str, float]]] = {OURS_IDEM: [], OURS_ANSIBLE: [], OURS_REUSE: []}
    try:
        session(THREE_PLATFORMS, "test_web.py")  # every prepared image exists
        session("--infra-platform=debian-12", "--infra-cache=converge", "test_web.py")  # the hit's image
        if mol is not None and kept is not None:  # the existing instances, outside the timed part
            mol.create_existing()
            kept.setup()
        order = list(runs)
        shuffler = random.Random(9)
        for i in range(rounds):
            shuffler.shuffle(order)
            for name in order:
                cpu_at_start = busy_cpu_seconds()
                times[name].append(runs[name]())
                after = busy_cpu_seconds()
                if name in phases:
                    phases[name].append(node_phases(last_stdout[0]))
                if cpu_at_start is not None and after is not None:
                    cpu[name].append(after - cpu_at_start)
            print(f"sessions: round {i + 1}/{rounds} done", file=sys.stderr)
    finally:
        for swept in (floor, *floors_of_three):
            swept.sweep()
        if kept is not None:
            kept.cleanup()
        if mol is not None:
            mol.cleanup()
        # Ours: converged images of this run's converge.sh (its hash is one of the key's parts),
        # prepared images of the cold platforms and of debian-12b, if this run made them.
        made = [
            i
            for i in engine.list_images(labels.CONVERGE)
            if script_hash[:16] in json.loads(i.labels.get(labels.CONVERGE_PARTS) or "{}").values()
        ]
        for name in [*cold_platforms, "debian-12b"]:
            made += [i for i in engine.list_images(f"{labels.PLATFORM}={name}") if i.id not in before]
        for image in made:
            try:
                engine.remove_image(image.id)
            except Exception as exc:
                print(f"could not remove image {image.id[:19]}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if not rounds:
        return notes
    med = {name: statistics.median(ts) for name, ts in times.items()}
    lines = [
        "",
        f"2. warm suite: node up, shell converge of examples/nginx, 25 checks, teardown ({rounds} rounds)",
        *_median_table(
            "whole run",
            {k: times[k] for k in (FLOOR, OURS_25)},
            {FLOOR: (FLOOR, "x floor"), OURS_25: (FLOOR, "x floor")},
        ),
        "   the floor's phases (medians): "
        + "; ".join(f"{phase} {fmt(statistics.median(ts))}" for phase, ts in floor.phases.items()),
        "   ours is a whole `python -m pytest` process (interpreter, plugin, collection, report) with",
        "   the prepared image cached; the floor runs inside this process with docker-py already imported.",
        "",
        f"3./4. sessions: `pytest test_web.py` of examples/nginx (11 checks), a subprocess ({rounds} rounds)",
        *_median_table(
            "whole session",
            {k: times[k] for k in (COLD, WARM, HIT, THREE, THREE_SERIAL, FLOOR_ONE, FLOOR_THREE)},
            {
                COLD: (WARM, "x warm"),
                WARM: (WARM, "x warm"),
                HIT: (WARM, "x warm"),
                THREE: (WARM, "x one platform"),
                THREE_SERIAL: (WARM, "x one platform"),
                FLOOR_ONE: (FLOOR_ONE, "x floor, one"),
                FLOOR_THREE: (FLOOR_ONE, "x floor, one"),
            },
        ),
        f"   (cold: {med[COLD] / med[HIT]:.1f}x a converge-cache hit;"
        f" warm: {med[WARM] / med[HIT]:.1f}x a hit;"
        f" three at once: {med[THREE] / med[THREE_SERIAL]:.2f}x three one after another)",
        "   debian-12b is `platform_definitions: {debian-12b: {base: debian-12}}`.",
        "   floor: create, start, boot wait, put_archive + converge exec, remove, with docker-py in this",
        "   process (section 2's steps without the checks); three at once: one thread per node, debian-12,",
        "   debian-13 and debian-12 again. The floor's three at once are"
        f" {med[FLOOR_THREE] / med[FLOOR_ONE]:.2f}x its one; ours {med[THREE] / med[WARM]:.2f}x ours.",
        goal_line(
            "ours three-at-once/one ÷ floor three-at-once/one",
            (med[THREE] / med[WARM]) / (med[FLOOR_THREE] / med[FLOOR_ONE]),
            "<=",
            1.05,
        ),
    ]
    if cpu[WARM] and cpu[THREE]:
        one_cpu, three_cpu = statistics.median(cpu[WARM]), statistics.median(cpu[THREE])
        cpus = os.cpu_count() or 1
        lines += [
            f"   CPU busy, whole machine (medians): one platform {one_cpu:.1f} CPU-s,"
            f" three at once {three_cpu:.1f} CPU-s ({three_cpu / one_cpu:.1f}x);",
            f"   on {cpus} CPU(s) three at once need at least {three_cpu / cpus:.2f} s of CPU"
            f" = {three_cpu / cpus / med[WARM]:.2f}x one platform's wall time",
        ]
    if mol is not None:
        lines += [
            "",
            f"5. the same role (examples/ansible, roles/web), spec test_web.py (10 checks), {rounds} rounds",
            *_median_table(
                "whole run",
                {k: times[k] for k in (MOLECULE, OURS_IDEM, OURS_ANSIBLE)},
                {
                    MOLECULE: (OURS_IDEM, "x ours, idempotence"),
                    OURS_IDEM: (OURS_IDEM, "x ours, idempotence"),
                    OURS_ANSIBLE: (OURS_IDEM, "x ours, idempotence"),
                },
            ),
            f"   (molecule test: {med[MOLECULE] / med[OURS_ANSIBLE]:.2f}x ours without --infra-idempotence)",
            *phase_lines({k: (med[k], phases[k]) for k in (OURS_IDEM, OURS_ANSIBLE)}),
            "   molecule test = dependency (no-op), destroy, syntax, create, prepare, converge, idempotence,",
            "   verify (testinfra, its ansible connection), destroy; ours = node up, prepare, converge",
            "   [, idempotence], the tests through the exec channel, node removed. Same image recipe,",
            "   container options, ansible-core and playbooks.",
            "",
            f"5b. an existing instance: the same role and spec, {rounds} rounds",
            *_median_table(
                "whole run",
                {k: times[k] for k in (MOL_EXISTING, MOL_VERIFY, OURS_REUSE)},
                {
                    MOL_EXISTING: (OURS_REUSE, "x ours, reuse"),
                    MOL_VERIFY: (OURS_REUSE, "x ours, reuse"),
                    OURS_REUSE: (OURS_REUSE, "x ours, reuse"),
                },
            ),
            "   molecule: `molecule create`, prepare, a first converge and verify before the rounds; each",
            "   round `molecule converge` (the playbook again: no change) then `molecule verify`, or the",
            "   verify alone. ours: a first `pytest --infra-keep=always` kept the converged node; each round",
            "   `pytest --infra-reuse --infra-keep=always` takes it over (its converge inputs unchanged: no",
            "   converge runs) and runs the spec; the round fails unless it took over that very node.",
            *phase_lines({OURS_REUSE: (med[OURS_REUSE], phases[OURS_REUSE])}),
            "",
            goal_line("molecule test / ours --infra-idempotence", med[MOLECULE] / med[OURS_IDEM], ">=", 3.0),
            f"molecule converge && verify / ours --infra-reuse = {med[MOL_EXISTING] / med[OURS_REUSE]:.2f}x"
            " (#22 sets no figure for it)",
            f"   (molecule verify alone / ours --infra-reuse = {med[MOL_VERIFY] / med[OURS_REUSE]:.2f}x:"
            " the same work on both sides, the spec on a converged node)",
        ]
    elif molecule is None:
        notes.append("5. molecule test: not run (add --molecule)")
    return lines + notes


STARTUP_WITHOUT = "pytest -p no:infranode"
STARTUP_WITH = "pytest, plugin loaded, no platforms"


def startup(rounds: int) -> list[str]:
    """Section 0: what the plugin adds to a pytest run that uses no node.

    pytest loads the plugin in every run of an environment that has it installed; such a run
    should cost what it costs without it. Each sample is a whole ``python -m pytest`` of one
    trivial test.
    """
    work = Path(tempfile.mkdtemp(prefix="infranode-bench-startup-"))
    (work / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")

    def run(*extra: str) -> Method:
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]

        def call() -> object:
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"startup: {argv} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            return done

        return call

    try:
        times = measure({STARTUP_WITHOUT: run("-p", "no:infranode"), STARTUP_WITH: run()}, rounds, warmup=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    without = (STARTUP_WITHOUT, "x without")
    lines = [
        "",
        "0. pytest start-up: `python -m pytest` of one plain test, no platforms",
        *_median_table("whole run", times, {STARTUP_WITHOUT: without, STARTUP_WITH: without}, width=40),
        f"({len(times[STARTUP_WITH])} rounds, interleaved;"
        " the Docker SDK is imported only by runs with platforms)",
    ]
    return lines


def one_check(engine: Engine, rounds: int) -> list[str]:
    """Section 1: one check through each way into a booted debian-12 node, and 25 in a row."""
    plat = Catalog().get("debian-12")
    image, _cached = engine.prepared_image(plat, lambda msg: print(msg, file=sys.stderr))
    node = Node(engine, plat, session_id=f"bench{uuid.uuid4().hex[:11]}", image=image)
    lines: list[str] = []
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
        shell = engine.open_shell(cid, ["/bin/sh"])
        decoder = FrameDecoder()

        def bare(line: bytes) -> Method:
            def call() -> object:
                shell.send(line)
                seen = 0
                while seen < 2:
                    seen += sum(p.count(b"X") for _, p in decoder.feed(shell.recv(65536, 10)))
                return seen

            return call

        bare_shell = bare(b"true; echo X; echo X >&2\n")
        # The same, with the isolation a channel command that could change the shell gets: a
        # subshell (one fork), stdin from /dev/null. A simple command such as `true` or `test -e`
        # runs in the channel's shell itself (channel.runs_in_place), without that fork.
        bare_subshell = bare(b"( true ) </dev/null; echo X; echo X >&2\n")

        try:
            # each check, and the shell command it sends (the raw exec runs that command)
            checks: dict[str, tuple[Callable[[testinfra.host.Host], object], str]] = {
                'host.run("true")': (lambda h: h.run("true"), "true"),
                'host.file("/etc/passwd").exists': (
                    lambda h: h.file("/etc/passwd").exists,
                    "test -e /etc/passwd",
                ),
                # a command that could change the shell: the channel runs it in a subshell
                'host.run("cd /tmp && pwd")': (lambda h: h.run("cd /tmp && pwd"), "cd /tmp && pwd"),
            }
            for title, (check, command) in checks.items():
                methods: dict[str, Method] = {
                    "raw SDK exec": raw_exec(["true"] if command == "true" else ["/bin/sh", "-c", command]),
                    "testinfra docker://": bind(check, theirs),
                    "infranode fallback (1 exec/cmd)": bind(check, fallback),
                    "infranode channel": bind(check, ours),
                    "persistent shell + subshell": bare_subshell,
                    "persistent-shell floor": bare_shell,
                }
                fast = {
                    "infranode channel": 20,
                    "persistent shell + subshell": 20,
                    "persistent-shell floor": 20,
                }
                times = measure(methods, rounds, burst=fast)
                lines += [
                    "",
                    *table(f"1. one check: {title}", times, "testinfra docker://", "persistent-shell floor"),
                    "(channel and persistent shells: each sample is the mean of 20 back-to-back calls;",
                    " + subshell: `( true ) </dev/null`, the isolation the channel gives a command that",
                    " could change the shell; {})".format(
                        "this one takes it"
                        if not runs_in_place(command.encode())
                        else "this one runs in the channel's shell itself"
                    ),
                    "(infranode channel = {:.2f}x the persistent shell + subshell)".format(
                        statistics.median(times["infranode channel"])
                        / statistics.median(times["persistent shell + subshell"])
                    ),
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
                max(5, rounds // 6),
                warmup=1,
            )
            lines += [
                "",
                *table(
                    "1b. 25 testinfra checks on a booted node (no pytest, no converge)",
                    suite_times,
                    "testinfra docker://",
                    None,
                ),
            ]
        finally:
            shell.close()
            slow.close()
    finally:
        node.remove()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="Rounds per method (default: 60)")
    parser.add_argument(
        "--suite-rounds",
        type=int,
        default=3,
        help="Rounds of whole runs: sections 2-5 (warm suite vs the SDK floor, cold/warm/cache hit,"
        " one/three platforms, molecule; default: 3)",
    )
    parser.add_argument(
        "--molecule",
        action="store_true",
        help="Section 5: also time `molecule test` of examples/ansible's role against ours"
        " (installs Molecule into --molecule-venv on first use; runs it on the prepared debian-12 image)",
    )
    parser.add_argument(
        "--molecule-venv",
        default=None,
        help="Where Molecule is installed (default: <temp dir>/infranode-bench-molecule)",
    )
    parser.add_argument(
        "--docker-host", default=None, help="Docker daemon (default: DOCKER_HOST, local socket)"
    )
    args = parser.parse_args(argv)
    # Every Python run here (our sessions, molecule) caches its bytecode, as after a pip install:
    # with PYTHONDONTWRITEBYTECODE set, a module edited since its last cached compile is compiled
    # again in every run, which no installed copy does.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.docker_host:
        os.environ["DOCKER_HOST"] = args.docker_host

    engine = Engine.connect(args.docker_host)
    lines = machine(engine)
    running = [c for c in engine.list_containers([]) if c.state == "running"]
    lines.append(
        f"others:  {len(running)} containers running on the daemon at the start (shared: timings are noisy)"
    )
    try:
        if args.rounds > 0:
            lines += startup(max(10, args.rounds // 2))
            lines += one_check(engine, args.rounds)
        if args.suite_rounds > 0:
            venv = molecule_venv(args.molecule_venv) if args.molecule else None
            lines += sessions(engine, args.suite_rounds, venv)
    finally:
        engine.close()
    lines.append("load at the end: {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
