"""scripts/packages.txt declares every Debian package the project installs and the tools it runs
from each; the tests and benchmarks call no tool it does not name (a tool nobody installs is one a
fresh machine lacks). Pure: reads files only."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.lab.podman import RUNTIMES

ROOT = Path(__file__).parents[2]
GROUPS = {"engine", "test", "cgroup2"}


def declared() -> dict[str, tuple[set[str], set[str]]]:
    """package -> (its groups, its tools)."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for line in (ROOT / "scripts" / "packages.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        package, groups, tools, *_ = line.split()
        assert package not in found, f"{package} is declared twice"
        found[package] = (set(groups.split(",")), set() if tools == "-" else set(tools.split(",")))
    return found


def tools_called() -> dict[str, str]:
    """tool name (or absolute path) -> the first file that calls it."""
    called: dict[str, str] = {}
    sources = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    for path in sources:
        text = path.read_text()
        names = re.findall(r"\bneed\(\"([\w.-]+)\"\)", text)
        names += re.findall(r"\"(/usr/s?bin/[\w.-]+)[\" ]", text)
        for name in names:
            called.setdefault(name, str(path.relative_to(ROOT)))
    for runtime in RUNTIMES:  # the lab's need(runtime)
        called.setdefault(runtime, "tests/integration/lab/podman.py")
    return called


def test_every_line_names_known_groups_and_is_unique() -> None:
    packages = declared()
    assert len(packages) >= 10
    for package, (groups, _) in packages.items():
        assert groups <= GROUPS, f"{package}: unknown group(s) {groups - GROUPS}"


def test_both_oci_runtimes_are_installed_by_name() -> None:
    """podman depends on "crun | runc": which one a machine has must not be left to chance."""
    packages = declared()
    for runtime in RUNTIMES:
        assert runtime in packages, f"{runtime} is not installed by name"
        assert "test" in packages[runtime][0]


def test_every_tool_the_tests_call_comes_from_a_declared_package() -> None:
    listed: set[str] = set()
    for _, tools in declared().values():
        listed |= tools
    # the lab's paths in the tests' own nodes or tools the base image always has are not host tools
    in_nodes = {"/usr/bin/puppet", "/usr/bin/salt-call", "/usr/bin/env", "/usr/local/bin"}
    missing = {
        name: where
        for name, where in tools_called().items()
        if name not in in_nodes and name not in listed and Path(name).name not in listed
    }
    assert not missing, f"tools called but installed by no line of scripts/packages.txt: {missing}"


def test_the_scripts_install_only_declared_groups() -> None:
    for script in (ROOT / "scripts").glob("*.sh"):
        for call in re.findall(r"ensure-packages\.sh\"? ([a-z ]+)$", script.read_text(), re.MULTILINE):
            assert set(call.split()) <= GROUPS, f"{script.name} installs unknown group(s): {call}"


def test_each_masked_unit_has_a_reason_and_every_systemd_recipe_masks_them_all() -> None:
    from pytest_infranode.platforms.package_managers import MASKED_UNITS
    from pytest_infranode.platforms.package_managers import PACKAGE_MANAGERS

    assert {"proc-fs-nfsd.mount", "run-rpc_pipefs.mount", "systemd-udevd.service"} <= set(MASKED_UNITS)
    assert all(reason.strip() for reason in MASKED_UNITS.values())
    for name, manager in PACKAGE_MANAGERS.items():
        if name == "apk":  # OpenRC
            continue
        masks = [step for step in manager.prepare if step.startswith("systemctl mask ")]
        assert masks == ["systemctl mask " + " ".join(MASKED_UNITS)], name
