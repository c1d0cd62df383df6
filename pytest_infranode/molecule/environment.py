"""The ``MOLECULE_*`` variables of a session whose configuration came from a Molecule scenario,
set as Molecule sets them for its verifier. Pure: paths in, variables out.

The configuration came from a scenario when its file sits in ``molecule/<scenario>/`` next to
``molecule.yml`` (where ``infranode import molecule`` writes it). What Molecule knows only while
it runs is the session's here: ``MOLECULE_INVENTORY_FILE`` is the session inventory (that of
the platform a test runs on: see :func:`platform_variables`), ``MOLECULE_EPHEMERAL_DIRECTORY`` a
folder of the session's log directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import final

from pytest_infranode.molecule.interpolation import RUNTIME_VARIABLES
from pytest_infranode.molecule.interpolation import molecule_variables
from pytest_infranode.molecule.reader import MOLECULE_DIR
from pytest_infranode.molecule.reader import MOLECULE_FILE
from pytest_infranode.molecule.reader import read_scenario

ANSIBLE_TOOLS = ("ansible-inventory", "ansible")
"""What testinfra's ``AnsibleRunner`` runs on the runner: found next to the Python that runs
pytest when that folder is not on ``PATH`` (a virtualenv used without activating it)."""


SESSION_VARIABLES = (
    "MOLECULE_PROJECT_DIRECTORY",
    "MOLECULE_SCENARIO_DIRECTORY",
    "MOLECULE_SCENARIO_NAME",
    "MOLECULE_FILE",
    "MOLECULE_DRIVER_NAME",
    "MOLECULE_PROVISIONER_NAME",
    "MOLECULE_ENV_FILE",
    "MOLECULE_EPHEMERAL_DIRECTORY",
    "MOLECULE_INVENTORY_FILE",
    "MOLECULE_INSTANCE_CONFIG",
    "MOLECULE_STATE_FILE",
    "MOLECULE_DEBUG",
    "MOLECULE_VERIFIER_NAME",
    "MOLECULE_VERIFIER_TEST_DIRECTORY",
)
"""What :func:`session_variables` sets, for the import's report."""


@final
@dataclass(frozen=True, slots=True)
class Scenario:
    """Where a Molecule scenario is: the role, the scenario's folder, its name."""

    role_dir: Path
    directory: Path
    name: str

    @property
    def molecule_file(self) -> Path:
        return self.directory / MOLECULE_FILE


def scenario_of(config_file: Path | None) -> Scenario | None:
    """The scenario ``config_file`` was written for, or None (not next to a molecule.yml)."""
    if config_file is None:
        return None
    directory = config_file.resolve().parent
    if not (directory / MOLECULE_FILE).is_file():
        return None
    parent = directory.parent
    role_dir = parent.parent if parent.name == MOLECULE_DIR else parent
    return Scenario(role_dir=role_dir, directory=directory, name=directory.name)


def session_variables(scenario: Scenario, *, inventory: Path, ephemeral: Path) -> dict[str, str]:
    """The variables Molecule sets for its verifier, with this session's files. Pure."""
    variables = molecule_variables(
        role_dir=scenario.role_dir,
        scenario_dir=scenario.directory,
        scenario_name=scenario.name,
        molecule_file=scenario.molecule_file,
    )
    variables.update(
        {
            "MOLECULE_ENV_FILE": str(scenario.role_dir / ".env.yml"),
            "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral),
            "MOLECULE_INVENTORY_FILE": str(inventory),
            "MOLECULE_INSTANCE_CONFIG": str(ephemeral / "instance_config.yml"),
            "MOLECULE_STATE_FILE": str(ephemeral / "state.yml"),
            "MOLECULE_DEBUG": "False",
            "MOLECULE_VERIFIER_NAME": "testinfra",
            "MOLECULE_VERIFIER_TEST_DIRECTORY": str(scenario.directory / "tests"),
        }
    )
    return variables


def verifier_env(scenario: Scenario, environ: Mapping[str, str]) -> dict[str, str]:
    """``verifier.env`` of the scenario's molecule.yml, read as Molecule reads it when it runs
    (its base config, ``.env.yml``, ``${VAR}`` from ``environ``, which holds the session's
    ``MOLECULE_*`` variables): Molecule puts it over every other variable of its verifier.

    :raises SettingsError: molecule.yml has a mistake (file:line).
    """
    runtime = {name: environ[name] for name in RUNTIME_VARIABLES if name in environ}
    return dict(
        read_scenario(scenario.role_dir, scenario.name, environ=environ, runtime=runtime).verifier.env
    )


def platform_variables(
    scenario: Scenario, session: Mapping[str, str], inventory: Path, environ: Mapping[str, str]
) -> dict[str, str]:
    """What the tests of one platform see differently from the session's variables
    ``session`` (those of its first platform): ``MOLECULE_INVENTORY_FILE`` names ``inventory``,
    the platform's own, as each Molecule run has its own inventory, and ``verifier.env`` values
    that interpolate it follow. Empty when ``inventory`` is the session's (one platform, or the
    platforms of one span). Reads molecule.yml again, nothing else.

    :raises SettingsError: molecule.yml has a mistake (file:line).
    """
    if session.get("MOLECULE_INVENTORY_FILE") == str(inventory):
        return {}
    changed = {"MOLECULE_INVENTORY_FILE": str(inventory)}
    env = verifier_env(scenario, {**environ, **session, **changed})
    changed.update({name: value for name, value in env.items() if session.get(name) != value})
    return changed


def tools_path(environ: Mapping[str, str], python_bin: Path) -> str | None:
    """``PATH`` with ``python_bin`` first when the Ansible tools are there and not on ``PATH``;
    None when nothing needs to change."""
    path = environ.get("PATH", "")
    dirs = [Path(d) for d in path.split(os.pathsep) if d]
    if python_bin in dirs or not any((python_bin / tool).exists() for tool in ANSIBLE_TOOLS):
        return None
    return os.pathsep.join([str(python_bin), *filter(None, path.split(os.pathsep))])


def instance_config_text(instances: Mapping[str, str]) -> str:
    """``MOLECULE_INSTANCE_CONFIG``: each instance (node name) and its container. Pure."""
    return "".join(f"- instance: {name}\n  container: {container}\n" for name, container in instances.items())
