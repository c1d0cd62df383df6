"""pytest-testinfra's host options (what Molecule's verifier passes) are not silently ignored
when the plugin's platforms bind the `host` fixture: one warning names them. No daemon:
collection only."""

from __future__ import annotations

import pytest

SPEC = "def test_x(host):\n    assert host\n"
CONFIG = "provisioner: {name: shell, inline: ['true']}\n"


def test_molecules_verifier_options_get_one_warning_naming_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_spec=SPEC)
    pytester.makefile(".yaml", infranode=CONFIG)
    result = pytester.runpytest_subprocess(
        "--infra-platform=debian-12",
        "--connection=ansible",
        "--ansible-inventory=inventory.yml",
        "--collect-only",
        "-q",
    )
    out = result.stdout.str()
    assert result.ret == 0, out
    assert out.count("InfranodeWarning: pytest-testinfra's --connection, --ansible-inventory not used") == 1
    assert "testinfra_hosts" in out
    assert "test_spec.py::test_x[debian-12]" in out  # the plugin's host, per platform


def test_no_warning_without_them_or_without_platforms(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_spec=SPEC)
    pytester.makefile(".yaml", infranode=CONFIG)
    with_platform = pytester.runpytest_subprocess("--infra-platform=debian-12", "--collect-only", "-q")
    without = pytester.runpytest_subprocess("--connection=local", "--collect-only", "-q")
    assert "not used" not in with_platform.stdout.str()
    assert "not used" not in without.stdout.str()  # testinfra's own host: its options work
    assert "test_spec.py::test_x[local]" in without.stdout.str()
