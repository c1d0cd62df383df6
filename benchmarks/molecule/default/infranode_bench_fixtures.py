"""What examples/ansible's spec takes from the plugin, for Molecule's verifier (benchmarks/run.py).

The verifier runs test_web.py with ``-p no:infranode`` and testinfra's ansible connection, so
the spec's ``infra_platform`` fixture is this one: its name is the inventory host, as ours is
the platform's name. Loaded with ``-p infranode_bench_fixtures`` (the scenario's verifier env).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture
def infra_platform(host: object) -> SimpleNamespace:
    return SimpleNamespace(name=host.backend.host)  # type: ignore[attr-defined]
