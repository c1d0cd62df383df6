"""A Molecule scenario whose platforms run different images, on its own images: its nodes are
one span (one network, one inventory, one Ansible run over it), so the role's cross-host
references work, converged for real on debian-12 and debian-13 (the two_images fixture: a fact
of the primary read through hostvars on the replica, a line written on the primary by
delegate_to)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import InfraRun
from tests.integration.conftest import import_molecule

FIXTURES = Path(__file__).parents[1] / "fixtures" / "molecule"

Run = Callable[..., InfraRun]


def test_a_scenario_of_different_images_converges_in_one_run_on_its_own_images(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    role = pytester.path / "two_images"
    shutil.copytree(FIXTURES / "two_images", role)
    printed, command = import_molecule(pytester, capsys, role)
    assert not any("one Ansible run over the inventory" in line for line in printed)  # no gap any more
    written = (role / "molecule" / "default" / "infranode.yaml").read_text()
    assert "platform: primary" in written
    assert "platform: replica" in written
    run = infra_run(*command[1:], "-v", subprocess=True)  # no --infra-platform: its own images
    out = run.result.stdout.str()
    run.result.assert_outcomes(passed=6)
    for spec in (
        "test_the_replica_registered_itself_by_delegate_to[primary]",  # delegate_to
        "test_the_primary_is_on_its_own_image[primary]",
        "test_the_replica_read_the_primarys_fact_through_hostvars[replica]",  # hostvars, one run
        "test_the_replica_is_on_its_own_image[replica]",
        "test_the_replica_reaches_the_primary_by_name[replica]",  # one network
        "test_one_inventory_holds_both_hosts",  # MOLECULE_INVENTORY_FILE: the span's inventory
    ):
        assert f"{spec} PASSED" in out, spec
    assert out.count("converging nodes primary, replica in one ansible run") == 1
    assert out.count("converging nodes primary, replica again to check idempotence") == 1
    assert "converging nodes replica" not in out  # the replica was not converged alone
    prefix = f"infranode-{run.session_id}"
    inventory = next(
        Path(line.split("over the inventory ", 1)[1].split(" (log:", 1)[0])
        for line in out.splitlines()
        if "in one ansible run over the inventory" in line
    )
    assert inventory.name == f"{prefix}-primary.inventory.yml"
    assert not (inventory.parent.parent / f"{prefix}-replica.inventory").exists()  # one inventory
    for name in ("primary-primary", "replica-replica"):
        assert f"{prefix}-{name} " in out  # the summary: each node on its own platform


def test_re_targeted_to_two_platforms_each_platforms_tests_see_its_own_inventory(
    pytester: pytest.Pytester, infra_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """Molecule has one inventory per run: with --infra-platform=debian-12,debian-13 each
    platform has its own, and MOLECULE_INVENTORY_FILE (and verifier.env made from it) names it
    during that platform's tests, the session's value (the first's) before and after. The
    specs make no node."""
    role = pytester.path / "two_images"
    shutil.copytree(FIXTURES / "two_images", role)
    _, command = import_molecule(pytester, capsys, role)
    tests = next(a for a in command if a.endswith("tests"))
    (pytester.path / tests / "test_env.py").write_text(
        "import os\n\n\n"
        "def test_the_inventory_is_the_platforms(infra_platform, infra_inventory):\n"
        '    assert os.environ["MOLECULE_INVENTORY_FILE"] == str(infra_inventory)\n'
        '    assert os.environ["TWO_IMAGES_INVENTORY"] == str(infra_inventory)\n'
        '    assert infra_inventory.name.endswith(f"-{infra_platform.name}.inventory.yml")\n\n\n'
        "def test_outside_a_platform_the_session_value_is_there():\n"
        '    assert os.environ["MOLECULE_INVENTORY_FILE"].endswith("-debian-12.inventory.yml")\n'
        '    assert os.environ["TWO_IMAGES_INVENTORY"] == os.environ["MOLECULE_INVENTORY_FILE"]\n'
    )
    args = [a if a != tests else f"{tests}/test_env.py" for a in command[1:]]
    run = infra_run(*args, "--infra-platform=debian-12,debian-13", "-v", subprocess=True)
    run.result.assert_outcomes(passed=3)
    out = run.result.stdout.str()
    for spec in ("[debian-12]", "[debian-13]"):
        assert f"test_the_inventory_is_the_platforms{spec} PASSED" in out
    assert "created, booting" not in out  # no node was needed
