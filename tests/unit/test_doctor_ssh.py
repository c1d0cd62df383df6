"""The ssh:// verdicts, from facts (no sshd needed)."""

from __future__ import annotations

from dataclasses import replace

from pytest_infranode.engine import doctor

BASE = doctor.SshFacts(
    user="ci",
    host="build.example",
    port=22,
    paramiko=True,
    known_hosts="/home/ci/.ssh/known_hosts",
    host_known=True,
    argv=("ssh", "-p", "22", "ci@build.example", "docker", "version"),
    returncode=255,
    stderr="",
)


def test_paramiko_missing_comes_first() -> None:
    finding = doctor.verdict_ssh(replace(BASE, paramiko=False, stderr="Connection refused"))
    assert finding.summary == "ssh:// needs paramiko (docker-py's ssh transport), which is not installed"
    assert "pytest-infranode[ssh]" in finding.fix


def test_unknown_host_key_on_port_22_has_no_brackets() -> None:
    finding = doctor.verdict_ssh(replace(BASE, host_known=False, stderr="Host key verification failed."))
    assert finding.summary == "the host key of build.example is not in /home/ci/.ssh/known_hosts"
    assert "ssh-keyscan build.example >> /home/ci/.ssh/known_hosts" in finding.fix


def test_changed_host_key() -> None:
    stderr = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."
    finding = doctor.verdict_ssh(replace(BASE, stderr=stderr))
    assert finding.summary.startswith("the host key of build.example:22 changed")
    assert (
        "stderr: @@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@ | Host key" in finding.evidence[-1]
    )
    # appending the new key would leave the stale line in front of it: remove it first
    assert "ssh-keygen -f /home/ci/.ssh/known_hosts -R build.example && ssh-keyscan" in finding.fix
    assert "someone may be between you and build.example" in finding.fix


def test_changed_host_key_names_the_offending_line() -> None:
    stderr = (
        "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\n"
        "Offending ED25519 key in /home/ci/.ssh/known_hosts:7\nHost key verification failed."
    )
    finding = doctor.verdict_ssh(replace(BASE, port=2222, stderr=stderr))
    assert finding.summary == (
        "the host key of build.example:2222 changed since it was stored in /home/ci/.ssh/known_hosts:7"
    )
    assert "-R '[build.example]:2222' && ssh-keyscan -p 2222 build.example >>" in finding.fix


def test_no_docker_cli_on_the_remote() -> None:
    finding = doctor.verdict_ssh(
        replace(BASE, returncode=127, stderr="bash: line 1: docker: command not found")
    )
    assert finding.summary == "build.example has no docker CLI on the PATH of ci@build.example:22"


def test_remote_user_not_in_docker_group() -> None:
    stderr = (
        "permission denied while trying to connect to the Docker daemon socket at "
        "unix:///var/run/docker.sock: Get ...: dial unix /var/run/docker.sock: connect: permission denied"
    )
    finding = doctor.verdict_ssh(replace(BASE, returncode=1, stderr=stderr))
    assert finding.summary == "ci on build.example may not use the Docker socket"
    assert finding.kind == "permission"
    assert "usermod -aG docker ci" in finding.fix


def test_unresolvable_host() -> None:
    stderr = "ssh: Could not resolve hostname build.example: Name or service not known"
    finding = doctor.verdict_ssh(replace(BASE, stderr=stderr))
    assert finding.summary == "the ssh host 'build.example' does not resolve"
