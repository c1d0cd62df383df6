from __future__ import annotations

import dataclasses
import io
import tarfile

import pytest

from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.containers import SYSTEMD_STOP_SIGNAL
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.engine.containers import tar_files
from pytest_infranode.platforms import SYSTEMD_TMPFS

CGROUP_VOLUME = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
LABELS = {"infranode.session": "s1", "infranode.platform": "debian-12", "infranode.node": "n1"}


def daemon(*, cgroup_version: str = "2", podman: bool = False) -> DaemonInfo:
    return DaemonInfo(
        endpoint="unix:///var/run/docker.sock",
        source="default",
        server_version="27.3.1",
        api_version="1.47",
        cgroup_version=cgroup_version,
        cgroup_driver="systemd" if cgroup_version == "2" else "cgroupfs",
        os="Debian GNU/Linux 12 (bookworm)",
        podman=podman,
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


@pytest.mark.parametrize("cgroup_version", ["1", "2"])
def test_systemd_on_docker(cgroup_version: str) -> None:
    kwargs = create_kwargs(SYSTEMD_SPEC, daemon(cgroup_version=cgroup_version))
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
    assert kwargs["tty"] is False
    assert "network" not in kwargs


def test_systemd_on_podman() -> None:
    kwargs = create_kwargs(SYSTEMD_SPEC, daemon(podman=True))
    assert "privileged" not in kwargs
    assert "cgroupns" not in kwargs
    assert "volumes" not in kwargs
    assert kwargs["tmpfs"] == {}
    assert kwargs["stop_signal"] == "SIGRTMIN+3"
    assert kwargs["labels"] == LABELS
    assert kwargs["environment"]["container"] == "docker"


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
