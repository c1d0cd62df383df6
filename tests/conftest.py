from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"

# Test data: the Molecule fixtures' specs are a role's own (they read MOLECULE_INVENTORY_FILE at
# import), collected only by the tests that import them.
collect_ignore = ["fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.docker)
