"""Built-in provisioners; each module is a plugin implementing ``pytest_infranode_add_provisioners``."""

from __future__ import annotations

from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import Provisioner

__all__ = ["ChangeList", "ConvergeResult", "OutputTail", "Provisioner"]

BUILTIN_MODULES = (
    "pytest_infranode.provisioners.bare",
    "pytest_infranode.provisioners.shell",
    "pytest_infranode.provisioners.ansible",
    "pytest_infranode.provisioners.pyinfra",
    "pytest_infranode.provisioners.puppet",
    "pytest_infranode.provisioners.salt",
    "pytest_infranode.provisioners.chef",
)
