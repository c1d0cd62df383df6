"""The verdict on an ssh:// daemon (pure). docker-py's default ssh transport is paramiko, which
reads $HOME/.ssh; the facts hold what it said and what the ssh client says when run the same way."""

from __future__ import annotations

import re
import shlex

from pytest_infranode.engine.diagnosis.facts import SshFacts
from pytest_infranode.engine.diagnosis.facts import known_hosts_name
from pytest_infranode.engine.diagnosis.findings import Finding


def verdict_ssh(facts: SshFacts, ci: str = "") -> Finding:
    """Why an ssh:// daemon cannot be used, from the facts (pure)."""
    target = f"{facts.user}@{facts.host}:{facts.port}" if facts.user else f"{facts.host}:{facts.port}"
    evidence: list[str] = []
    if facts.transport_error:
        evidence.append(f"docker-py (paramiko) said: {facts.transport_error}")
    if facts.argv:
        evidence.append("ran: " + shlex.join(facts.argv))
        evidence.append(
            f"ssh exit status {facts.returncode}"
            + (f", stderr: {' | '.join(facts.stderr.splitlines())}" if facts.stderr else "")
        )
    err = facts.stderr.lower()
    if not facts.paramiko:
        return Finding(
            "connect",
            "fail",
            "ssh:// needs paramiko (docker-py's ssh transport), which is not installed",
            tuple(evidence),
            "pip install 'pytest-infranode[ssh]' (or: pip install paramiko)",
        )
    if "could not resolve hostname" in err or "name or service not known" in err:
        return Finding(
            "connect",
            "fail",
            f"the ssh host {facts.host!r} does not resolve",
            tuple(evidence),
            "check the host name in DOCKER_HOST (ssh://user@host[:port])",
        )
    if "connection refused" in err or "unable to connect to port" in facts.transport_error.lower():
        return Finding(
            "connect",
            "fail",
            f"nothing listens for ssh on {facts.host}:{facts.port} (no sshd, or the wrong port)",
            tuple(evidence),
            f"start sshd on {facts.host}, or give the right port: "
            f"ssh://{facts.user or 'user'}@{facts.host}:PORT",
        )
    if (
        facts.host_known is not True
        or "host key verification failed" in err
        or "not found in known_hosts" in facts.transport_error
    ):
        port = "" if facts.port == 22 else f" -p {facts.port}"
        name = known_hosts_name(facts.host, facts.port)
        scan = f"ssh-keyscan{port} {facts.host} >> {facts.known_hosts}"
        if "remote host identification has changed" in err or "does not match" in facts.transport_error:
            offending = re.search(r"Offending \S+ key in (\S+):(\d+)", facts.stderr)
            stored = f"{offending[1]}:{offending[2]}" if offending else facts.known_hosts
            return Finding(
                "connect",
                "fail",
                f"the host key of {facts.host}:{facts.port} changed since it was stored in {stored}",
                tuple(evidence),
                "if the host was rebuilt or re-keyed on purpose, drop the stale entry and store the "
                f"new key (check its fingerprint first): ssh-keygen -f {shlex.quote(facts.known_hosts)} "
                f"-R {shlex.quote(name)} && {scan}; if not, stop: someone may be between you and "
                f"{facts.host}",
            )
        return Finding(
            "connect",
            "fail",
            f"the host key of {name} is not in {facts.known_hosts}",
            tuple(evidence),
            f"docker-py refuses unknown host keys: add it (check its fingerprint first): {scan}",
        )
    if "permission denied (publickey" in err or "authentication failed" in facts.transport_error.lower():
        return Finding(
            "connect",
            "fail",
            f"the ssh server refused the key for {target}",
            tuple(evidence),
            f"put your public key in ~{facts.user}/.ssh/authorized_keys on {facts.host}, or the key in "
            "$HOME/.ssh (id_ed25519/id_rsa) or an IdentityFile line of $HOME/.ssh/config",
        )
    if "docker: command not found" in err or "docker: not found" in err:
        return Finding(
            "connect",
            "fail",
            f"{facts.host} has no docker CLI on the PATH of {target}",
            tuple(evidence),
            "docker over ssh runs `docker system dial-stdio` on the remote: install the docker CLI there",
        )
    if "permission denied while trying to connect to the docker daemon socket" in err:
        return Finding(
            "connect",
            "fail",
            f"{facts.user or 'the remote user'} on {facts.host} may not use the Docker socket",
            tuple(evidence),
            f"on {facts.host}: sudo usermod -aG docker {facts.user or 'USER'} (then log in again)",
            kind="permission",
        )
    if facts.returncode == 0:
        return Finding(
            "connect",
            "fail",
            f"ssh to {target} runs docker, but docker-py's ssh transport failed",
            tuple(evidence),
            "read paramiko's message above; `pip install -U paramiko docker` may help",
        )
    return Finding(
        "connect",
        "fail",
        f"the Docker daemon at ssh://{target} cannot be reached over ssh",
        tuple(evidence),
        "run the `ran:` command above yourself to see why",
    )
