"""Molecule's variable interpolation of molecule.yml, done the way Molecule does it. Pure.

Molecule substitutes ``$NAME``, ``${NAME}``, ``${NAME:-default}`` (the default when unset or
empty) and ``${NAME-default}`` (the default when unset) in the file's text before reading it as
YAML; ``$$`` is a literal ``$``; an unset name becomes "". Its own ``MOLECULE_*`` variables are
substituted from what it knows about the scenario. The ones it knows only while it runs (the
inventory file, the ephemeral directory) are kept as written here, and reported.

One deviation: Molecule's pattern lets an unbraced ``$NAME-default`` take the rest of the file up
to the next ``}`` as its default; here only the braced forms take a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pytest_infranode.errors import SettingsError
from pytest_infranode.molecule.model import Variable

RUNTIME_VARIABLES = (
    "MOLECULE_EPHEMERAL_DIRECTORY",
    "MOLECULE_INVENTORY_FILE",
    "MOLECULE_INSTANCE_CONFIG",
    "MOLECULE_STATE_FILE",
    "MOLECULE_DEBUG",
)
"""Set by Molecule only while it runs: nothing equivalent exists before a session."""

_NAME = r"[_a-z][_a-z0-9]*"
_PATTERN = re.compile(
    rf"\$(?:(?P<escaped>\$)|(?P<named>{_NAME})|{{(?P<braced>{_NAME}(?::?-[^}}]*)?)}}|(?P<invalid>))",
    re.IGNORECASE,
)


def molecule_variables(
    *, role_dir: Path, scenario_dir: Path, scenario_name: str, molecule_file: Path, driver: str = "docker"
) -> dict[str, str]:
    """Molecule's own variables that are known before any instance exists. Pure."""
    return {
        "MOLECULE_PROJECT_DIRECTORY": str(role_dir),
        "MOLECULE_SCENARIO_DIRECTORY": str(scenario_dir),
        "MOLECULE_SCENARIO_NAME": scenario_name,
        "MOLECULE_FILE": str(molecule_file),
        "MOLECULE_DRIVER_NAME": driver,
        "MOLECULE_PROVISIONER_NAME": "ansible",
    }


def interpolate(
    text: str, *, path: Path, environ: Mapping[str, str], molecule: Mapping[str, str]
) -> tuple[str, list[Variable]]:
    """``text`` with every variable substituted, and what each one became (first use only).

    :param environ: the environment (``os.environ`` and ``.env.yml``) to read names from.
    :param molecule: Molecule's own known variables (:func:`molecule_variables`); they win over
        ``environ``, as in Molecule. Those of :data:`RUNTIME_VARIABLES` are left as they are
        unless given here (by a session, which knows them).
    :raises SettingsError: a ``$`` that starts no variable, naming the file and line.
    """
    found: dict[str, Variable] = {}

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def note(name: str, offset: int, kind: str, value: str) -> None:
        if name not in found:
            found[name] = Variable(name, f"{path}:{line_of(offset)}", kind, value)  # type: ignore[arg-type]

    def convert(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "$"
        named = match.group("named") or match.group("braced")
        if named is None:
            line = line_of(match.start())
            snippet = text.splitlines()[line - 1].strip() if text else ""
            raise SettingsError(
                f"{path.name}: a `$` that starts no variable: {snippet!r}",
                where=f"{path}:{line}",
                fix="write `$$` for a literal `$`, or `${NAME}` / `${NAME:-default}` for a variable",
            )
        name, default = named, None
        empty_is_unset = False
        if ":-" in named:
            name, _, default = named.partition(":-")
            empty_is_unset = True
        elif "-" in named:
            name, _, default = named.partition("-")
        if default is not None and default.startswith("$"):
            default = {**environ, **molecule}.get(default[1:], "")
        if name in RUNTIME_VARIABLES and name not in molecule:  # known in a session only
            note(name, match.start(), "runtime", "")
            return match.group(0)
        if name in molecule:
            note(name, match.start(), "molecule", molecule[name])
            return molecule[name]
        value = environ.get(name)
        if value is not None and not (empty_is_unset and value == ""):
            note(name, match.start(), "environment", value)
            return value
        if default is not None:
            note(name, match.start(), "default", default)
            return default
        note(name, match.start(), "unset", "")
        return ""

    return _PATTERN.sub(convert, text), list(found.values())
