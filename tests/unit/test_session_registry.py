from __future__ import annotations

import pytest

from pytest_infranode.errors import PluginError
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.platforms import build_catalog
from pytest_infranode.provisioners.shell import ShellProvisioner
from pytest_infranode.registry import build_provisioners


class OtherShell:
    name = "shell"

    def check(self, config: object) -> None:
        return None

    def converge(self, node: object, config: object, output: object) -> object:
        return None


def test_duplicate_provisioner_names_both_plugins() -> None:
    with pytest.raises(PluginError) as excinfo:
        build_provisioners([[ShellProvisioner()], [OtherShell()]])  # type: ignore[list-item]
    text = str(excinfo.value)
    assert "two plugins add a provisioner called 'shell'" in text
    assert "pytest_infranode.provisioners.shell" in text
    assert __name__ in text


def test_non_provisioner_is_refused() -> None:
    with pytest.raises(PluginError) as excinfo:
        build_provisioners([[object()]])  # type: ignore[list-item]
    assert "is not a provisioner" in excinfo.value.what
    assert "converge(node, config, output)" in excinfo.value.fix


def test_none_contributions_are_ignored() -> None:
    assert list(build_provisioners([None, [ShellProvisioner()]])) == ["shell"]
    assert len(build_catalog([None, []])) == len(BUILTIN_PLATFORMS)
