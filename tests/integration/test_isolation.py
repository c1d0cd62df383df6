"""Several sessions on one daemon at once (four CI jobs on one runner) never touch each other."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine


def test_four_sessions_at_once(pytester: pytest.Pytester, engine: Engine) -> None:
    procs = []
    for i in range(4):
        d = pytester.mkdir(f"job{i}")
        (d / "infranode.yaml").write_text(
            f"provisioner:\n  name: shell\n  inline: ['echo job{i} > /etc/job']\n"
        )
        (d / "test_job.py").write_text(
            "def test_own_node(host, infra_node):\n"
            f"    assert host.file('/etc/job').content_string == 'job{i}\\n'\n"
            "    print('SESSION', infra_node.session_id)\n"
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-s",
                    "-p",
                    "no:cacheprovider",
                    "--infra-platform=debian-12",
                ],
                cwd=d,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    sessions = set()
    for proc in procs:
        out = proc.communicate(timeout=600)[0].decode()
        assert proc.returncode == 0, out
        match = re.search(r"SESSION (\w+)", out)
        assert match, out
        sessions.add(match.group(1))
    assert len(sessions) == 4
    for session_id in sessions:
        assert engine.list_containers([f"{labels.SESSION}={session_id}"]) == []
