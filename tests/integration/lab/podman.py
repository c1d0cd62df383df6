"""Podman's Docker-compatible API on a private socket, with the OCI runtime chosen on purpose.

Debian's podman depends on ``crun | runc``: a machine that got podman first runs crun, one that
had docker.io (and so runc) first runs runc. Users have both (crun is the default on Fedora, RHEL
and recent Debian and Ubuntu), so the lab never takes what the machine happens to have: each
service is started with ``--runtime crun`` or ``--runtime runc``, and both are installed by name
(scripts/packages.txt).

crun refuses a *hybrid* cgroup host whose cgroup v2 hierarchy holds controllers ("cgroups in
hybrid mode not supported, drop all controllers from cgroupv2"); these machines are such a host
(v1 for everything, ``hugetlb`` left on v2, and whether v2 holds it at a given moment depends on
whether a systemd node happens to run). On such a host a crun service runs in a private mount
namespace that binds those controllers to v1 hierarchies of its own (:func:`hybrid_v2_controllers`),
which is the hybrid layout crun supports; :meth:`LabPodman.stop` releases them again. The runc
service runs as it is. Without that namespace crun fails here in more than one way, depending
on what else runs (systemd nodes of the host's Docker bind those controllers to v1 in their own
namespaces and leave empty directories in the host's /sys/fs/cgroup): the doctor's words for
crun's refusal of a hybrid host are unit-tested with crun's own message (tests/unit/test_doctor.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Literal

from tests.integration.lab import LabError
from tests.integration.lab import _log_tail
from tests.integration.lab import _terminate
from tests.integration.lab import _unmount_below
from tests.integration.lab import need

Runtime = Literal["crun", "runc"]
RUNTIMES: tuple[Runtime, ...] = ("crun", "runc")


def hybrid_v2_controllers(
    proc_cgroups: str | None = None, mounts: str | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> list[str]:
    """On a hybrid host (v1 hierarchies beside a ``unified`` cgroup v2 mount), the enabled
    controllers that have no v1 mount in this mount namespace, in the groups a systemd host
    mounts them in (``net_cls,net_prio`` together): those the v2 hierarchy holds, or holds again
    as soon as whoever bound them to v1 elsewhere lets go (a systemd node on such a host mounts
    them in its own namespace while it runs). ``[]`` on a pure v1 or v2 host."""
    if not (cgroup_root / "unified" / "cgroup.controllers").is_file():
        return []
    if proc_cgroups is None:
        proc_cgroups = Path("/proc/cgroups").read_text()
    if mounts is None:
        mounts = Path("/proc/self/mounts").read_text()
    on_v1 = set()
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == "cgroup":
            on_v1.update(fields[3].split(","))
    enabled = [
        f[0] for f in (line.split() for line in proc_cgroups.splitlines() if not line.startswith("#"))
        if len(f) == 4 and f[3] == "1"
    ]  # fmt: skip
    left = [c for c in enabled if c not in on_v1]
    if "net_cls" in left and "net_prio" in left:
        left = [c for c in left if c != "net_prio"]
        left[left.index("net_cls")] = "net_cls,net_prio"
    return left


# Run in a private mount namespace (argv: the lab's work dir, then the command): a /sys/fs/cgroup
# of its own, holding the host's v1 hierarchies (bound from the host's tree) and a v1 hierarchy
# for each controller the host left without one, where crun looks for them. The host's own
# /sys/fs/cgroup is not touched.
CGROUP_V1_LAYOUT = r"""
set -e
work=$1; shift; extra=$1; shift
mkdir -p "$work/host-cgroup"
mount --rbind /sys/fs/cgroup "$work/host-cgroup"
mount -t tmpfs -o mode=755 inft-cgroup /sys/fs/cgroup
for dir in "$work"/host-cgroup/*; do
    name=${dir##*/}
    if [ -L "$dir" ]; then ln -s "$(readlink "$dir")" "/sys/fs/cgroup/$name"; continue; fi
    mountpoint -q "$dir" || continue
    mkdir "/sys/fs/cgroup/$name" && mount --bind "$dir" "/sys/fs/cgroup/$name"
done
for group in $extra; do
    [ -d "/sys/fs/cgroup/$group" ] && mountpoint -q "/sys/fs/cgroup/$group" && continue
    if [ -L "/sys/fs/cgroup/$group" ]; then rm "/sys/fs/cgroup/$group"; fi
    mkdir -p "/sys/fs/cgroup/$group"
    mount -t cgroup -o "$group" "inft-$group" "/sys/fs/cgroup/$group"
    case $group in *,*) for one in ${group//,/ }; do ln -sfn "$group" "/sys/fs/cgroup/$one"; done ;; esac
done
umount -l "$work/host-cgroup"
exec "$@"
"""

# After the service: remove the cgroups crun made in those extra hierarchies (a v1 hierarchy lives
# on, bound to v1, while it holds a cgroup), so each controller goes back where the host had it.
CGROUP_V1_RELEASE = r"""
work=$1; shift
for group in "$@"; do
    mkdir -p "$work/release/$group"
    mount -t cgroup -o "$group" "inft-$group" "$work/release/$group" || continue
    find "$work/release/$group" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
    umount "$work/release/$group"
done
"""


@dataclass
class LabPodman:
    """A rootful ``podman system service`` with its own storage, run root and containers.conf.

    Default network namespace ``slirp4netns``: user-mode networking, so a node reaches the Debian
    mirror while netavark never touches the host's iptables. The cgroupfs manager (no systemd on
    CI machines), and ``default_ulimits`` capped at this process's hard limits: podman otherwise
    asks for more than the hard limit and, without CAP_SYS_RESOURCE (this VM, many CI sandboxes),
    every container start fails (runc: "error setting rlimit type 7: operation not permitted";
    crun: "setrlimit `RLIMIT_NOFILE`: Operation not permitted").
    """

    root: Path
    runtime: Runtime
    process: subprocess.Popen[bytes] | None = None
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: v2 controllers bound to v1 in this service's mount namespace (crun on a hybrid host)
    moved_controllers: tuple[str, ...] = ()

    @property
    def socket(self) -> Path:
        return self.root / "podman.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def env(self, conf: Path | None = None) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(conf or self.root / "containers.conf")}

    def argv(self, *args: str) -> list[str]:
        """A podman command line on this lab's storage and runtime; for crun on a hybrid host,
        wrapped in a private mount namespace whose own v1 hierarchies hold the v2 controllers."""
        podman = [
            need("podman"), "--runtime", need(self.runtime),
            "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
            "--storage-driver", "overlay", *args,
        ]  # fmt: skip
        if not self.moved_controllers:
            return podman
        return [need("unshare"), "--mount", "--propagation", "private", "bash", "-c", CGROUP_V1_LAYOUT,
                "sh", str(self.root), " ".join(self.moved_controllers), *podman]  # fmt: skip

    def podman(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def serve(self, sock: Path, conf: Path, log: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
        """Start ``podman system service`` on ``sock`` with ``conf`` and wait until it answers."""
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                self.argv("system", "service", "--time=0", f"unix://{sock}"),
                env=self.env(conf),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not _unix_answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                _terminate(proc, 5)
                raise LabError(f"podman system service ({self.runtime}) did not answer on {sock}:\n"
                               + _log_tail(log, 15))  # fmt: skip
            time.sleep(0.1)
        return proc

    def serve_uncapped(self) -> str:
        """A second API service on the same storage, with this lab's containers.conf minus
        ``default_ulimits``: podman's own default, which fails every container start where the
        caller lacks CAP_SYS_RESOURCE. Returns its ``unix://`` address; stopped by :meth:`stop`."""
        conf = self.root / "uncapped.conf"
        lines = (self.root / "containers.conf").read_text().splitlines()
        conf.write_text("\n".join(line for line in lines if not line.startswith("default_ulimits")) + "\n")
        sock = self.root / "uncapped.sock"
        self.extra.append(self.serve(sock, conf, self.root / "uncapped.log"))
        return f"unix://{sock}"

    def log_tail(self, lines: int = 15) -> str:
        return _log_tail(self.root / "service.log", lines)

    def stop(self) -> None:
        """Remove its containers, stop the services by PID, then its conmons, mounts, storage."""
        if (self.root / "storage").is_dir():
            self.podman("rm", "-a", "-f", "-t", "0", timeout=120)
        for proc in [*self.extra, self.process]:
            _terminate(proc, 15)
        # a conmon can outlive its removed container: end those that name THIS storage, by PID
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("/usr/bin/conmon ") and f"{self.root}/" in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGTERM)
        self.podman("system", "reset", "-f", timeout=120)
        if self.moved_controllers:
            subprocess.run(
                [need("unshare"), "--mount", "--propagation", "private", "bash", "-c", CGROUP_V1_RELEASE,
                 "sh", str(self.root), *self.moved_controllers],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        _unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        remove_empty_netavark_chains()


def remove_empty_netavark_chains() -> None:
    """netavark leaves empty base chains in the host's iptables after a bridged container; drop
    them only while they hold no rule (no podman network on this host uses them)."""
    if shutil.which("iptables") is None:
        return

    def ipt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["iptables", *args], capture_output=True, text=True, check=False)

    forward = ipt("-S", "NETAVARK_FORWARD")
    dnat = ipt("-t", "nat", "-S", "NETAVARK-HOSTPORT-DNAT")
    if forward.returncode != 0 or len(forward.stdout.splitlines()) != 1:
        return
    if dnat.returncode == 0 and len(dnat.stdout.splitlines()) != 1:
        return
    comment = ["-m", "comment", "--comment", "netavark firewall plugin rules"]
    ipt("-D", "FORWARD", *comment, "-j", "NETAVARK_FORWARD")
    ipt("-X", "NETAVARK_FORWARD")
    for chain in ("PREROUTING", "OUTPUT"):
        ipt("-t", "nat", "-D", chain, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-HOSTPORT-DNAT")
    ipt("-t", "nat", "-D", "POSTROUTING", "-j", "NETAVARK-HOSTPORT-MASQ")
    for chain in ("NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ", "NETAVARK-HOSTPORT-SETMARK"):
        ipt("-t", "nat", "-F", chain)
        ipt("-t", "nat", "-X", chain)


def _hard_limit(resource: int, cap: int | None = None) -> int:
    import resource as _resource

    hard = _resource.getrlimit(resource)[1]
    if hard == _resource.RLIM_INFINITY or (cap is not None and hard > cap):
        return cap if cap is not None else 1048576
    return hard


def start_podman(
    base: Path, images: list[str], runtime: Runtime, host_socket: str = "/var/run/docker.sock"
) -> LabPodman:
    """Podman's API service on ``base/podman/podman.sock`` running ``runtime``, with ``images``
    copied from the host daemon (``docker save`` through the API, ``podman load``). Needs root,
    podman and the runtime."""
    import resource as _resource

    import docker

    if os.geteuid() != 0:
        raise LabError("the Podman topology test starts a rootful podman service: run it as root (CI does)")
    need("podman")
    need("slirp4netns")
    need(runtime)
    root = base / "podman"
    for sub in ("storage", "run", "networks", "tmp"):
        (root / sub).mkdir(parents=True)
    nofile = _hard_limit(_resource.RLIMIT_NOFILE)
    # podman 4.3 lowers its own RLIMIT_NPROC to 32768 at start-up, then asks for the host's value
    nproc = _hard_limit(_resource.RLIMIT_NPROC, cap=32768)
    (root / "containers.conf").write_text(
        "[containers]\n"
        'netns = "slirp4netns"\n'
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[network]\n"
        f'network_config_dir = "{root}/networks"\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{root}/events.log"\n'
        f'tmp_dir = "{root}/tmp"\n'
        f'volume_path = "{root}/storage/volumes"\n'
    )
    moved = tuple(hybrid_v2_controllers()) if runtime == "crun" else ()
    lab = LabPodman(root, runtime, moved_controllers=moved)
    host = docker.DockerClient(base_url=f"unix://{host_socket}", version="1.41")
    try:
        for image in images:
            tar = root / "tmp" / (image.replace("/", "_").replace(":", "_") + ".tar")
            with open(tar, "wb") as fh:
                for chunk in host.images.get(image).save(named=True):
                    fh.write(chunk)
            loaded = lab.podman("load", "-q", "-i", str(tar))
            tar.unlink()
            if loaded.returncode != 0:
                lab.stop()
                raise LabError(f"podman load {image} failed: {loaded.stderr.strip()}")
    finally:
        host.close()
    try:
        lab.process = lab.serve(lab.socket, root / "containers.conf", root / "service.log")
    except LabError:
        lab.stop()
        raise
    return lab


def _unix_answers(path: Path) -> bool:
    """GET /_ping on a unix socket answers 200."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return sock.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
    except OSError:
        return False
