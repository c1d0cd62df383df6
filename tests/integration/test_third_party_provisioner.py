"""A provisioner shipped as its own package (its own pytest11 entry point), installed for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine

DEMO = Path(__file__).parents[1] / "fixtures" / "infranode-provisioner-demo"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo package pip-installed into a directory of its own (not into the shared venv)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(DEMO),
        ],
        check=True,
        capture_output=True,
    )
    assert list(target.glob("infranode_provisioner_demo-1.0.0.dist-info"))
    return target


def test_installed_provisioner_is_found_by_name(
    pytester: pytest.Pytester, demo_site: Path, engine: Engine
) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: files
          files:
            /etc/demo.conf: "from a third-party provisioner"
        """,
    )
    pytester.makepyfile(
        """
        def test_file(host):
            assert host.file("/etc/demo.conf").content_string == "from a third-party provisioner"
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(demo_site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--infra-platform=debian-12", "-v"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "infranode-provisioner-demo" in proc.stdout or "infranode_demo" in proc.stdout
    assert "test_file[debian-12] PASSED" in proc.stdout
    session = next(
        line.split("session ")[1].split()[0] for line in proc.stdout.splitlines() if "; session " in line
    )
    assert engine.list_containers([f"{labels.SESSION}={session}"]) == []


def test_without_the_package_the_name_is_unknown(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", infranode="provisioner: {name: files, files: {/etc/x: y}}\n")
    pytester.makepyfile("def test_file(host):\n    pass\n")
    result = pytester.runpytest("--infra-platform=debian-12")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown provisioner 'files'*"])
