from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
import warnings
from pathlib import Path
from typing import Any
from typing import cast

import pytest

from pytest_infranode import units
from pytest_infranode.boot import BOOT_WAIT_ROUND
from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.containers import CGROUP_SETUP
from pytest_infranode.engine.containers import SYSTEMD_STOP_SIGNAL
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.engine.containers import missing_ipv6_sysctl
from pytest_infranode.engine.containers import systemd_cgroup_mode
from pytest_infranode.engine.containers import tar_files
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.errors import NodeError
from pytest_infranode.node import Node
from pytest_infranode.platforms import SYSTEMD_TMPFS
from pytest_infranode.platforms import Catalog
from tests.unit.fakes import FakeEngine

CGROUP_VOLUME = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
LABELS = {"infranode.session": "s1", "infranode.platform": "debian-12", "infranode.node": "n1"}


def daemon(
    *, cgroup_version: str = "2", podman: bool = False, rootless: bool = False, security: tuple[str, ...] = ()
) -> DaemonInfo:
    return DaemonInfo(
        endpoint="unix:///var/run/docker.sock",
        source="default",
        server_version="27.3.1",
        api_version="1.47",
        cgroup_version=cgroup_version,
        cgroup_driver="systemd" if cgroup_version == "2" else "cgroupfs",
        os="Debian GNU/Linux 12 (bookworm)",
        podman=podman,
        rootless=rootless,
        security=security,
    )


SYSTEMD_SPEC = ContainerSpec(
    name="infranode-s1-debian-12",
    image="sha256:abc",
    hostname="infranode-s1-debian-12",
    labels=LABELS,
    command=("/sbin/init",),
    init="systemd",
    tmpfs=dict(SYSTEMD_TMPFS),
    cap_add=("SYS_ADMIN",),
)


def test_systemd_on_docker_cgroup_v1() -> None:
    kwargs = create_kwargs(SYSTEMD_SPEC, daemon(cgroup_version="1"))
    assert "privileged" not in kwargs
    assert kwargs["cgroupns"] == "host"
    assert kwargs["volumes"] == CGROUP_VOLUME
    assert kwargs["stop_signal"] == SYSTEMD_STOP_SIGNAL == "SIGRTMIN+3"
    assert kwargs["tmpfs"] == dict(SYSTEMD_TMPFS)
    assert kwargs["cap_add"] == ["SYS_ADMIN"]
    assert kwargs["command"] == ["/sbin/init"]
    assert kwargs["environment"] == {"container": "docker"}
    assert kwargs["labels"] == LABELS
    assert kwargs["image"] == "sha256:abc"
    assert kwargs["name"] == "infranode-s1-debian-12"
    assert kwargs["hostname"] == "infranode-s1-debian-12"
    assert kwargs["detach"] is True
    # A terminal gives systemd a /dev/console: its boot log reaches `docker logs`.
    assert kwargs["tty"] is True
    assert "network" not in kwargs
    assert "entrypoint" not in kwargs
    assert "security_opt" not in kwargs


def test_systemd_on_docker_cgroup_v2_remounts_its_own_namespace() -> None:
    """A private cgroup namespace (the node sees only its own subtree), no bind of the host's
    tree, and PID 1 a shell that remounts that namespace's cgroup2 read-write, then execs init."""
    kwargs = create_kwargs(SYSTEMD_SPEC, daemon(cgroup_version="2"))
    assert kwargs["cgroupns"] == "private"
    assert "volumes" not in kwargs
    assert kwargs["entrypoint"] == ["/bin/sh", "-c", CGROUP_SETUP, "infranode-init"]
    assert kwargs["command"] == ["/sbin/init"]
    assert CGROUP_SETUP.startswith("cg=/sys/fs/cgroup\n")
    assert 'mount -o remount,rw "$cg"' in CGROUP_SETUP
    assert CGROUP_SETUP.endswith('exec "$@"\n')
    assert kwargs["cap_add"] == ["SYS_ADMIN"]
    assert kwargs["tmpfs"] == dict(SYSTEMD_TMPFS)
    assert "privileged" not in kwargs
    assert "security_opt" not in kwargs  # no AppArmor on this daemon: nothing to loosen


@pytest.mark.parametrize("cgroup_version", ["1", "2"])
def test_apparmor_daemons_run_systemd_nodes_unconfined_by_apparmor_only(cgroup_version: str) -> None:
    info = daemon(cgroup_version=cgroup_version, security=("apparmor", "seccomp", "cgroupns"))
    kwargs = create_kwargs(SYSTEMD_SPEC, info)
    assert kwargs["security_opt"] == ["apparmor=unconfined"]  # seccomp stays Docker's default
    assert "privileged" not in kwargs
    plain = dataclasses.replace(SYSTEMD_SPEC, init="none", command=("sleep", "infinity"))
    assert "security_opt" not in create_kwargs(plain, info)
    assert "security_opt" not in create_kwargs(SYSTEMD_SPEC, dataclasses.replace(info, podman=True))


def test_systemd_on_podman() -> None:
    kwargs = create_kwargs(SYSTEMD_SPEC, daemon(podman=True))
    assert "privileged" not in kwargs
    assert "cgroupns" not in kwargs
    assert "volumes" not in kwargs
    assert kwargs["tmpfs"] == {}
    assert kwargs["stop_signal"] == "SIGRTMIN+3"
    assert kwargs["labels"] == LABELS
    assert kwargs["environment"]["container"] == "podman"


@pytest.mark.parametrize(
    ("cgroup_version", "podman", "rootless", "mode"),
    [
        ("1", False, False, "host-rw"),
        ("2", False, False, "private-rw"),
        ("1", False, True, "host-rw"),
        ("2", False, True, "private-rw"),
        ("1", True, False, "podman-native"),
        ("2", True, False, "podman-native"),
        ("2", True, True, "podman-native"),
    ],
)
def test_cgroup_mode_per_daemon(cgroup_version: str, podman: bool, rootless: bool, mode: str) -> None:
    info = daemon(cgroup_version=cgroup_version, podman=podman, rootless=rootless)
    assert systemd_cgroup_mode(info) == mode
    kwargs = create_kwargs(SYSTEMD_SPEC, info)
    assert "privileged" not in kwargs
    assert "security_opt" not in kwargs  # Docker's default seccomp profile stays on
    if mode == "host-rw":
        assert kwargs["cgroupns"] == "host"
        assert kwargs["volumes"] == CGROUP_VOLUME
        assert kwargs["tmpfs"] == dict(SYSTEMD_TMPFS)
    elif mode == "private-rw":
        assert kwargs["cgroupns"] == "private"
        assert "volumes" not in kwargs
    else:
        assert "cgroupns" not in kwargs
        assert "volumes" not in kwargs


def test_privileged_only_when_the_platform_asks() -> None:
    kwargs = create_kwargs(dataclasses.replace(SYSTEMD_SPEC, privileged=True), daemon())
    assert kwargs["privileged"] is True
    for info in (daemon(cgroup_version="1"), daemon(), daemon(podman=True), daemon(rootless=True)):
        assert "privileged" not in create_kwargs(SYSTEMD_SPEC, info)


def test_user_env_and_network_are_kept() -> None:
    spec = dataclasses.replace(SYSTEMD_SPEC, env={"container": "podman", "A": "1"}, network="infranode-s1")
    kwargs = create_kwargs(spec, daemon())
    assert kwargs["environment"] == {"container": "podman", "A": "1"}
    assert kwargs["network"] == "infranode-s1"


def test_kwargs_do_not_alias_the_spec() -> None:
    spec = dataclasses.replace(SYSTEMD_SPEC, labels=dict(LABELS), tmpfs=dict(SYSTEMD_TMPFS))
    kwargs = create_kwargs(spec, daemon())
    kwargs["labels"]["extra"] = "x"
    kwargs["tmpfs"]["/srv"] = "rw"
    assert "extra" not in spec.labels
    assert "/srv" not in spec.tmpfs
    assert spec.env == {}


def test_non_systemd_spec() -> None:
    spec = dataclasses.replace(SYSTEMD_SPEC, init="openrc", cap_add=(), tmpfs={"/run": "rw"})
    kwargs = create_kwargs(spec, daemon())
    assert "volumes" not in kwargs
    assert "cgroupns" not in kwargs
    assert "stop_signal" not in kwargs
    assert "privileged" not in kwargs
    assert kwargs["tmpfs"] == {"/run": "rw"}
    assert kwargs["tty"] is False
    assert kwargs["environment"] == {}
    assert kwargs["labels"] == LABELS


def test_no_command_means_image_default() -> None:
    kwargs = create_kwargs(dataclasses.replace(SYSTEMD_SPEC, command=(), init="none"), daemon())
    assert "command" not in kwargs


def test_tar_files_round_trip() -> None:
    files = {
        "00-converge.sh": (b"#!/bin/sh\necho hi\n", 0o755),
        "conf/site.conf": (b"name=demo\n", 0o644),
        "/abs/x": (b"", 0o600),
    }
    data = tar_files(files)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"00-converge.sh", "conf", "conf/site.conf", "abs", "abs/x"}
        assert members["conf"].isdir()
        assert members["conf"].mode == 0o755
        for name, (content, mode) in files.items():
            member = members[name.strip("/")]
            assert member.isfile()
            assert member.mode == mode
            extracted = tar.extractfile(member)
            assert extracted is not None
            assert extracted.read() == content


def test_tar_files_empty() -> None:
    with tarfile.open(fileobj=io.BytesIO(tar_files({})), mode="r") as tar:
        assert tar.getmembers() == []


def _boot(states: list[str], status: list[str], failed: str = "", log: str = "") -> FakeEngine:
    """The shared fake answering ``systemctl`` the way a booting node would: its container
    states in turn, the boot wait's status in turn, ``systemctl --failed``; nothing else."""
    engine = FakeEngine()
    engine.state_answers = states
    engine.boot_answers = [ExecResult(0, s.encode() + b"\n", b"") for s in status]
    unit = failed.split(" ", 1)[0]
    facts = f"@@unit {unit}\nActiveState=failed\nResult=exit-code\n"
    facts += "@@journal\nmount: unknown filesystem type 'x'\n"
    engine.exec_answers = {
        "systemctl": ExecResult(0, failed.encode(), b""),
        units.FACTS: ExecResult(0, facts.encode() if unit else b"", b""),
    }
    engine.answered_only = True
    engine.logs_text = log
    return engine


def _node(engine: FakeEngine) -> Node:
    node = Node(engine, Catalog().get("debian-12"), session_id="0123456789abcdef", image="x")
    node.create()
    return node


def test_boot_waits_for_running() -> None:
    node = _node(_boot(["running"], ["starting", "starting", "running"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        node.start(boot_timeout=30)
    assert node.state == "booted"
    assert node.degraded_units == ""


def test_boot_wait_asks_in_rounds_bounded_by_the_deadline() -> None:
    engine = _boot(["running"], ["starting", "starting", "running"])
    _node(engine).start(boot_timeout=600)
    assert engine.boot_rounds == [BOOT_WAIT_ROUND] * 3
    short = _boot(["running"], ["running"])
    _node(short).start(boot_timeout=0.5)
    assert len(short.boot_rounds) == 1
    assert 5 <= short.boot_rounds[0] <= 10  # 0.5 s of questions 50 ms apart, not a whole round


def test_boot_that_never_finishes_fails_with_the_last_state() -> None:
    node = _node(_boot(["running"], ["starting"], log="Starting hang.service..."))
    with pytest.raises(NodeError) as excinfo:
        node.start(boot_timeout=0.2)
    text = str(excinfo.value)
    assert "systemd did not finish booting in 0.2 s (state: starting)" in text
    assert "systemctl list-jobs" in text
    assert "Starting hang.service" in text


def test_systemd_platform_without_systemctl_says_so() -> None:
    node = _node(_boot(["running"], ["no-systemctl"]))
    with pytest.raises(NodeError, match="the platform boots systemd but the image has no systemctl"):
        node.start(boot_timeout=30)


def test_boot_wait_that_cannot_run_sh_says_so() -> None:
    no_shell = _boot(["running"], [])
    no_shell.boot_answers = [ExecResult(127, b"", b"exec: /bin/sh: no such file or directory")]
    with pytest.raises(NodeError) as excinfo:
        _node(no_shell).start(boot_timeout=30)
    assert "cannot wait for systemd in the node: /bin/sh exited with 127" in str(excinfo.value)
    assert "no such file" in str(excinfo.value)


def test_init_that_exits_during_the_boot_wait_fails_with_its_log() -> None:
    dies = _boot(["running", "exited"], [], log="Freezing execution.")
    dies.boot_answers = [ExecResult(137, b"", b"")]
    with pytest.raises(NodeError, match=r"the node stopped while booting \(container state: exited\)"):
        _node(dies).start(boot_timeout=30)


def test_degraded_boot_warns_with_the_failed_units() -> None:
    node = _node(
        _boot(["running"], ["degraded"], failed="tmp.mount loaded failed failed Temporary Directory")
    )
    with pytest.warns(InfranodeWarning, match=r"booted degraded; failed units:\ntmp\.mount") as said:
        node.start(boot_timeout=30)
    assert node.state == "booted"
    assert node.degraded_units.startswith("tmp.mount")
    assert "why, and the fix:\ntmp.mount: the kernel has no 'x' file system for the node" in str(
        said[0].message
    )
    assert [Path(w.filename).name for w in said] == ["node.py"]  # where the node was started


def test_init_that_exits_fails_with_its_log() -> None:
    log = "Failed to allocate manager object: No such file or directory\nExiting PID 1..."
    node = _node(_boot(["exited"], ["offline"], log=log))
    with pytest.raises(NodeError) as excinfo:
        node.start(boot_timeout=30)
    text = str(excinfo.value)
    assert "the node stopped while booting (container state: exited)" in text
    assert "Failed to allocate manager object" in text


def test_hostname_is_the_node_name() -> None:
    node = _node(_boot(["running"], ["running"]))
    assert node.spec.hostname == node.name == "infranode-0123456789abcdef-debian-12"
    named = Node(node.engine, node.platform, session_id="0123456789abcdef", image="x", short_name="web")
    assert named.spec.hostname == "web"


def test_platform_env_and_privileged_reach_the_spec() -> None:
    platform = dataclasses.replace(Catalog().get("debian-12"), env={"A": "1", "B": "p"}, privileged=True)
    node = Node(cast(Any, None), platform, session_id="s", image="x", env={"B": "node"})
    assert node.spec.env == {"A": "1", "B": "node"}
    assert node.spec.privileged is True


def _run_cgroup_setup(tmp_path: Path, mounts: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The PID 1 script run for real by /bin/sh on a stand-in cgroup tree under ``tmp_path``,
    with mount(8) replaced by a shell function that logs each call and answers ``mounts`` (a
    shell body: ``return 32`` refuses everything). Returns the run and the tree."""
    tree = tmp_path / "cgroup"
    tree.mkdir()
    (tree / "cgroup.controllers").write_text("memory pids\n")
    script = CGROUP_SETUP.replace("cg=/sys/fs/cgroup", f"cg={tree}", 1)
    script = script.replace("fresh=/run/infranode-cgroup", f"fresh={tmp_path}/fresh", 1)
    # each write to the kernel's file adds one controller; a plain file keeps only the last, so
    # every write is also appended to a log
    script = script.replace('echo "+$c"', 'echo "+$c" >> "$cg/written"; echo "+$c"', 1)
    fake_mount = f'mount() {{ echo "mount $*" >> {tmp_path}/mounts; {mounts}; }}\n'
    out = subprocess.run(
        ["/bin/sh", "-c", fake_mount + script, "infranode-init", "/bin/sh", "-c", "echo init:$$"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out, tree


def test_cgroup_setup_leaves_the_root_cgroup_and_delegates_every_controller(tmp_path: Path) -> None:
    """Remounted read-write (rootful Docker): PID 1 moves itself into init.scope, writes
    "+controller" for each controller the node has, and execs the command it was given."""
    out, tree = _run_cgroup_setup(tmp_path, f"touch {tmp_path}/cgroup/cgroup.subtree_control")
    moved = (tree / "init.scope" / "cgroup.procs").read_text().split()
    assert out.stdout.strip() == f"init:{moved[0]}"  # the same process: exec, not a child
    assert (tree / "written").read_text().split() == ["+memory", "+pids"]
    assert (tmp_path / "mounts").read_text().splitlines() == [f"mount -o remount,rw {tree}"]
    assert out.stderr == ""


def test_cgroup_setup_mounts_a_fresh_cgroup2_where_the_remount_is_refused(tmp_path: Path) -> None:
    """Rootless Docker refuses the remount of its read-only cgroup2 mount; a new cgroup2 mount of
    the node's own namespace, moved over /sys/fs/cgroup, is allowed (measured on the lab)."""
    answers = (
        f"""case "$1" in -o) return 32 ;; --move) touch {tmp_path}/cgroup/cgroup.subtree_control ;; esac"""
    )
    out, tree = _run_cgroup_setup(tmp_path, answers)
    assert (tmp_path / "mounts").read_text().splitlines() == [
        f"mount -o remount,rw {tree}",
        f"mount -t cgroup2 cgroup2 {tmp_path}/fresh",
        f"mount --move {tmp_path}/fresh {tree}",
    ]
    assert not (tmp_path / "fresh").exists()  # its mount point is removed after the move
    assert (tree / "written").read_text().split() == ["+memory", "+pids"]
    assert out.stderr == ""


def test_cgroup_setup_says_when_the_tree_stays_read_only(tmp_path: Path) -> None:
    out, tree = _run_cgroup_setup(tmp_path, "return 32")
    assert out.stdout.strip().startswith("init:")  # init still starts; systemd says what it lacks
    assert not (tree / "init.scope").exists()  # no writable subtree_control: nothing attempted
    assert out.stderr == (
        f"infranode: {tree} stays read-only (neither a remount nor a new cgroup2 mount was allowed): "
        "systemd cannot make its cgroups\n"
    )


@pytest.mark.parametrize(
    "info",
    [daemon(cgroup_version="1"), daemon(cgroup_version="2"), daemon(podman=True)],
    ids=["v1", "v2", "podman"],
)
def test_every_systemd_recipe_has_ipv6_on_the_loopback(info: DaemonInfo) -> None:
    assert create_kwargs(SYSTEMD_SPEC, info)["sysctls"] == {"net.ipv6.conf.lo.disable_ipv6": "0"}


def test_a_kernel_without_ipv6_gets_no_ipv6_default_but_keeps_the_nodes_own_sysctls() -> None:
    spec = dataclasses.replace(SYSTEMD_SPEC, sysctls={"net.ipv4.ip_forward": "1"})
    info = dataclasses.replace(daemon(), kernel_ipv6=False)
    assert create_kwargs(spec, info)["sysctls"] == {"net.ipv4.ip_forward": "1"}


@pytest.mark.parametrize(
    ("message", "key"),
    [
        # runc 1.1 (Docker 20.10 to 27), measured with a setting no kernel has
        (
            "starting the node: the daemon refused: failed to create shim task: OCI runtime create failed: "
            "runc create failed: unable to start container process: error during container init: open "
            "/proc/sys/net/ipv6/conf/lo/disable_ipv6: no such file or directory: unknown",
            "net.ipv6.conf.lo.disable_ipv6",
        ),
        (
            "open /proc/sys/net/ipv6/conf/all/disable_ipv6: No such file or directory",
            "net.ipv6.conf.all.disable_ipv6",
        ),
        # an interface the node does not have is not a kernel without IPv6
        ("open /proc/sys/net/ipv6/conf/eth7/disable_ipv6: no such file or directory", None),
        ("open /proc/sys/net/ipv4/ip_forward: permission denied", None),
        ("the daemon refused: Conflict. The container name is already in use", None),
    ],
)
def test_a_start_refused_for_want_of_ipv6_is_told_from_other_failures(message: str, key: str | None) -> None:
    assert missing_ipv6_sysctl(message) == key


def test_each_default_capability_has_a_reason_and_none_reaches_the_host() -> None:
    from pytest_infranode.platforms.platform import SYSTEMD_CAP_REASONS
    from pytest_infranode.platforms.platform import SYSTEMD_CAPS

    assert SYSTEMD_CAPS == ("SYS_ADMIN", "NET_ADMIN")
    assert all(reason.strip() for reason in SYSTEMD_CAP_REASONS.values())
    assert not {"SYS_TIME", "AUDIT_CONTROL", "SYS_MODULE", "SYS_RAWIO", "SYS_BOOT"} & set(SYSTEMD_CAPS)
