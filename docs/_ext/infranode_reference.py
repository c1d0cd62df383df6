"""The reference tables of the documentation, read from the code at build time. Pure: no Sphinx.

The Sphinx extension next to this file (``infranode_docs.py``) turns these rows into tables;
the unit tests (``tests/unit/test_docs_reference.py``) check them without Sphinx. Nothing here
is a copy: the options come from the one table in ``pytest_infranode/options.py`` and from what
``plugin.py`` registers with pytest for it, the platforms from ``platforms/builtin.py``, the
``infranode`` command from ``cli.build_parser``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytest_infranode import plugin
from pytest_infranode.cli import build_parser
from pytest_infranode.options import FILE_ONLY_KEYS
from pytest_infranode.options import OPTIONS
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.settings import NODE_KEYS

DEFAULT_MARK = "; default: "
"""Every option's help names its default after this mark (``options.Option.help``)."""


class ReferenceError(Exception):
    """The code does not give what a reference table needs (said as the fix, for the build log)."""


@dataclass(frozen=True)
class OptionRow:
    """One option as the configuration reference shows it."""

    noun: str
    command_line: str
    """``--infra-keep={never,failure,always}``, ``--infra-idempotence``: as ``pytest --help`` shows it."""
    ini_key: str
    yaml_key: str | None
    default: str
    meaning: str


class _Recorder:
    """Stands in for pytest's parser and its option group: records what ``plugin.pytest_addoption``
    registers, so the reference shows the options exactly as the plugin declares them."""

    def __init__(self) -> None:
        self.options: dict[str, dict[str, Any]] = {}
        self.ini: dict[str, str] = {}

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        for name in names:
            self.options[name] = kwargs

    def addini(self, name: str, help: str, **kwargs: Any) -> None:
        self.ini[name] = help


def registered() -> _Recorder:
    recorder = _Recorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    return recorder


def _value_form(flag: str, kwargs: dict[str, Any]) -> str:
    """How argparse shows the option's value: its metavar, its choices, else the dest in capitals."""
    if kwargs.get("action") == "store_const":
        return flag
    if "metavar" in kwargs:
        return f"{flag}={kwargs['metavar']}"
    if "choices" in kwargs:
        return f"{flag}={{{','.join(kwargs['choices'])}}}"
    return f"{flag}={kwargs['dest'].upper()}"


def option_rows() -> list[OptionRow]:
    """One row per entry of ``options.OPTIONS``, in its order."""
    recorder = registered()
    rows = []
    for option in OPTIONS:
        if option.flag not in recorder.options or option.ini_key not in recorder.ini:
            raise ReferenceError(f"plugin.pytest_addoption does not register {option.flag}, {option.ini_key}")
        meaning, mark, default = option.help.rpartition(DEFAULT_MARK)
        if not mark:
            raise ReferenceError(
                f"the help of {option.flag} in pytest_infranode/options.py does not name its default: "
                f"end it with {DEFAULT_MARK.strip()!r} and the default"
            )
        rows.append(
            OptionRow(
                noun=option.noun,
                command_line=_value_form(option.flag, recorder.options[option.flag]),
                ini_key=option.ini_key,
                yaml_key=option.yaml_key,
                default=default,
                meaning=meaning,
            )
        )
    return rows


KEY_SETS: dict[str, tuple[str, ...]] = {
    "file": tuple(FILE_ONLY_KEYS),
    "node": tuple(NODE_KEYS),
}
"""The keys a hand-written table of the reference must name, exactly: the YAML keys without a
command-line option (their meaning needs more than a help line) and the keys of a node."""


def key_mismatch(which: str, documented: list[str]) -> str:
    """What is wrong with a table that documents the keys ``KEY_SETS[which]``, or ``""``."""
    expected = KEY_SETS[which]
    missing = [k for k in expected if k not in documented]
    unknown = [k for k in documented if k not in expected]
    twice = sorted({k for k in documented if documented.count(k) > 1})
    problems = []
    if missing:
        problems.append(f"not documented: {', '.join(missing)}")
    if unknown:
        problems.append(f"documented but not accepted by the code: {', '.join(unknown)}")
    if twice:
        problems.append(f"documented twice: {', '.join(twice)}")
    return "; ".join(problems)


@dataclass(frozen=True)
class PlatformRow:
    name: str
    aliases: tuple[str, ...]
    image: str
    family: str
    package_manager: str
    init: str
    debootstrap: str


def platform_rows() -> list[PlatformRow]:
    """The built-in catalog, in its order."""
    return [
        PlatformRow(
            name=p.name,
            aliases=p.aliases,
            image=p.image,
            family=p.family,
            package_manager=p.package_manager,
            init=p.init,
            debootstrap=p.bootstrap.suite if p.bootstrap else "",
        )
        for p in BUILTIN_PLATFORMS
    ]


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its sub-commands only here
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for sub in action.choices.values():
                if id(sub) not in seen:  # an alias maps to the same parser
                    seen.add(id(sub))
                    yield sub


def command_helps(width: int = 96) -> list[tuple[str, str]]:
    """``(prog, help text)`` of the ``infranode`` command and of every sub-command, depth first,
    formatted at a fixed width so the page does not depend on the builder's terminal."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        helps: list[tuple[str, str]] = []

        def walk(parser: argparse.ArgumentParser) -> None:
            helps.append((parser.prog, parser.format_help()))
            for sub in _subparsers(parser):
                walk(sub)

        walk(build_parser())
        return helps
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
