"""The conformance suite's pure parts (tests/conformance): the table drawn from results, the
declared expectations, and infranode.yaml installing exactly the catalog's packages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conformance import catalog
from tests.conformance.catalog import Expectation
from tests.conformance.table import Outcome
from tests.conformance.table import Result
from tests.conformance.table import cell
from tests.conformance.table import markdown
from tests.conformance.table import terminal

SUITE = Path(catalog.__file__).parent

RESULTS = [
    Result("nginx", "debian-12", 1, Outcome.ACTIVE),
    Result("nginx", "debian-13", 1, Outcome.ACTIVE),
    Result(
        "chrony", "debian-12", 1, Outcome.EXPECTED, "ConditionCapability=CAP_SYS_TIME", "chrony  inactive"
    ),
    Result("chrony", "debian-13", 1, Outcome.FAILED, "chrony failed | a\nb"),
    Result("redis-server", "debian-12", 1, Outcome.UNEXPECTED_PASS, "217/USER"),
]


def test_markdown_has_one_row_per_package_and_one_column_per_platform_and_cgroup() -> None:
    text = markdown(RESULTS)
    lines = text.splitlines()
    assert lines[0] == "| package | debian-12 (cgroup v1) | debian-13 (cgroup v1) |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| nginx | active | active |"
    assert lines[3] == (
        "| chrony | no: ConditionCapability=CAP_SYS_TIME | **no, not declared**: chrony failed \\| a b |"
    )
    # A package not run in a column says so rather than leaving a hole.
    assert lines[4] == "| redis-server | **active, but declared impossible**: 217/USER | - |"
    assert lines[-1] == (
        "2 of 5 active; 1 declared impossible; 1 failed, not declared; 1 declared impossible but active."
    )


def test_markdown_of_nothing_says_so() -> None:
    assert markdown([]) == "No conformance results.\n"


def test_cgroup_versions_are_columns_of_their_own() -> None:
    text = markdown(
        [Result("nginx", "debian-12", 1, Outcome.ACTIVE), Result("nginx", "debian-12", 2, Outcome.ACTIVE)]
    )
    assert text.splitlines()[0] == "| package | debian-12 (cgroup v1) | debian-12 (cgroup v2) |"


def test_terminal_lists_what_is_not_active_per_column() -> None:
    lines = terminal(RESULTS)
    assert lines[0] == "debian-12 (cgroup v1): 1 of 3 active"
    assert lines[1] == "  chrony: no: ConditionCapability=CAP_SYS_TIME"
    assert lines[2] == "    seen: chrony inactive"  # the evidence of a declared cause
    assert lines[3].startswith("  redis-server: **active, but declared impossible**")
    assert lines[4] == "debian-13 (cgroup v1): 1 of 2 active"
    assert lines[5].startswith("  chrony: **no, not declared**")


def test_cell_of_an_active_package_names_no_cause() -> None:
    assert cell(Result("x", "debian-12", 1, Outcome.ACTIVE, "ignored")) == "active"


def test_an_expectation_covers_only_its_platforms_and_cgroup_versions() -> None:
    only_v1 = Expectation("auditd", "kernel audit", "audit", platforms=("debian-12",), cgroups=(1,))
    assert only_v1.covers("debian-12", 1)
    assert not only_v1.covers("debian-12", 2)
    assert not only_v1.covers("debian-13", 1)


def test_expectation_of_reads_the_declared_expectations(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = Expectation("chrony", "CAP_SYS_TIME", "CAP_SYS_TIME", cgroups=(2,))
    monkeypatch.setattr(catalog, "EXPECTED", (declared,))
    assert catalog.expectation_of("chrony", "debian-13", 2) is declared
    assert catalog.expectation_of("chrony", "debian-13", 1) is None
    assert catalog.expectation_of("nginx", "debian-13", 2) is None


def test_every_expectation_names_a_package_of_the_catalog_or_a_node_boot() -> None:
    names = {p.name for p in catalog.PACKAGES} | {f"(boot of node {n})" for n in catalog.NODES}
    assert {e.package for e in catalog.EXPECTED} <= names
    assert all(e.cause.strip() and e.evidence.strip() for e in catalog.EXPECTED)


def test_at_least_25_packages_each_checked_for_an_answer() -> None:
    assert len({p.name for p in catalog.PACKAGES}) == len(catalog.PACKAGES) >= 25
    assert all(p.units and (p.listens or p.command) for p in catalog.PACKAGES)


def test_infranode_yaml_installs_exactly_each_nodes_catalog_packages() -> None:
    config = yaml.safe_load((SUITE / "infranode.yaml").read_text(encoding="utf-8"))
    installed = {name: node["env"]["CONFORMANCE_PACKAGES"].split() for name, node in config["nodes"].items()}
    assert installed == {n: [p.name for p in catalog.packages_of(n)] for n in catalog.NODES}
