"""The pyinfra connector's fast path on a real node: commands through the exec channel, and one
exec per command (``INFRANODE_PYINFRA_CHANNEL=false``); files of 0 bytes, binary and 12 MB put
in and got back, a fact of 2 MB, a command as another user (``_su_user``) and with stdin at its
end, the same either way."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.conftest import InfraRun
from tests.integration.conftest import fetched_whole
from tests.integration.conftest import transfer_files

Run = Callable[..., InfraRun]

DEPLOY = """
from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

FILES = ["empty", "binary.bin", "big.bin"]

server.shell(name="An application user", commands=["id app || useradd --create-home app"])
for name in FILES:
    files.put(name=f"Put {name}", src=name, dest=f"/srv/{name}", mode="644")
    files.get(name=f"Get {name}", src=f"/srv/{name}", dest=f"fetched/{name}")

# A fact is one command whose output pyinfra reads: 2 MB of it, line by line.
lines = host.get_fact(Command, "seq 1 300000")
assert lines.splitlines()[-1] == "300000", lines[-100:]
server.shell(name="Who runs as app", commands=["id -un > /tmp/who"], _su_user="app")
server.shell(name="Kept", commands=["cp /tmp/who /srv/who"])
server.shell(name="Stdin is at its end", commands=["cat > /srv/stdin"])
"""

SPEC = """
import hashlib
from pathlib import Path

import pytest

FILES = ["empty", "binary.bin", "big.bin"]


@pytest.mark.parametrize("name", FILES)
def test_put_and_got(host, name):
    want = hashlib.sha256(Path(name).read_bytes()).hexdigest()
    assert hashlib.sha256(Path("fetched", name).read_bytes()).hexdigest() == want
    assert host.file(f"/srv/{name}").sha256sum == want
    assert host.file(f"/srv/{name}").mode == 0o644


def test_su_user_and_stdin(host):
    assert host.file("/srv/who").content_string == "app\\n"
    assert host.file("/srv/stdin").size == 0
"""


@pytest.mark.parametrize(
    ("env", "via"),
    [({}, "exec channel"), ({"INFRANODE_PYINFRA_CHANNEL": "false"}, "exec API, one exec per command")],
    ids=["channel", "exec-per-command"],
)
def test_files_of_any_size_output_and_users(
    pytester: pytest.Pytester, infra_run: Run, env: dict[str, str], via: str
) -> None:
    env_yaml = ", ".join(f"{k}: {v!r}" for k, v in env.items())
    pytester.makefile(
        ".yaml",
        infranode=f"""
        provisioner: {{name: pyinfra, deploy: deploy.py, env: {{{env_yaml}}}}}
        """,
    )
    pytester.makepyfile(deploy=DEPLOY, test_files=SPEC)
    transfer_files(pytester.path)
    run = infra_run("-v", "--infra-platform=debian-12")
    run.result.assert_outcomes(passed=4)
    out = run.result.stdout
    out.fnmatch_lines([f"*infranode: @infranode/* through the {via}"])
    assert "no exec channel" not in out.str()
    assert fetched_whole(pytester.path)
