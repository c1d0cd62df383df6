"""The one table of settings a user can give on the command line, in an ini file or in
infranode.yaml, and how each value is checked. Pure.

``plugin.py`` registers the command-line options and ini keys from :data:`OPTIONS`,
``settings.py`` layers them (command line > ini > YAML > default) from the same table and
accepts the YAML keys of :data:`YAML_KEYS`; the documentation's configuration reference is
drawn from it (``docs/_ext/``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Literal
from typing import cast
from typing import final
from typing import get_args

from pytest_infranode.errors import SettingsError

KeepPolicy = Literal["never", "failure", "always"]
KEEP_CHOICES: tuple[str, ...] = get_args(KeepPolicy)
CacheMode = Literal["off", "converge"]
CACHE_CHOICES: tuple[str, ...] = get_args(CacheMode)
PullPolicy = Literal["missing", "always", "never"]
PULL_CHOICES: tuple[str, ...] = get_args(PullPolicy)
DEFAULT_BOOT_TIMEOUT = 120.0
DEFAULT_CONVERGE_TIMEOUT = 3600.0

Kind = Literal["text", "seconds", "count", "flag", "names"]
"""``names``: a comma-separated, repeatable list; ``flag``: an option without a value."""
Parse = Callable[[Any, str], Any]
"""Checks a value given at ``where`` (``--infra-keep``, ``infra_keep (ini)``, ``file:line``)."""


# Parsers: each turns a value as written into the setting's value, or raises SettingsError.
def parse_docker_host(value: Any, where: str) -> str | None:
    if not isinstance(value, str):
        raise SettingsError("`docker_host` must be a string", where=where)
    return value or None


def _seconds(what: str) -> Parse:
    def parse(value: Any, where: str) -> float:
        try:
            number = -1.0 if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = -1.0
        if not math.isfinite(number) or number <= 0:
            raise SettingsError(f"{what} must be a positive number of seconds, not {value!r}", where=where)
        return number

    return parse


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _flag(key: str) -> Parse:
    def parse(value: Any, where: str) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        example = f"infra_{key} = true" if where.endswith("(ini)") else f"{key}: true"
        raise SettingsError(f"expected true or false, not {value!r}", where=where, fix=f"write `{example}`")

    return parse


def parse_keep(value: Any, where: str) -> KeepPolicy:
    if value not in KEEP_CHOICES:
        raise SettingsError(
            f"keep must be one of {', '.join(KEEP_CHOICES)}, not {value!r}",
            where=where,
            fix="use --infra-keep=failure to keep the nodes of failed tests",
        )
    return cast(KeepPolicy, value)


def parse_cache(value: Any, where: str) -> CacheMode:
    text = "off" if value is False or value is None else str(value).strip().lower()
    if text in ("none", "no", "false", ""):
        text = "off"
    if text not in CACHE_CHOICES:
        raise SettingsError(
            f"cache must be one of {', '.join(CACHE_CHOICES)}, not {value!r}",
            where=where,
            fix="use --infra-cache=converge to reuse converged nodes while their inputs are unchanged",
        )
    return cast(CacheMode, text)


def parse_parallel(value: Any, where: str) -> int:
    try:
        number = -1 if isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        number = -1
    if number < 1:
        raise SettingsError(
            f"parallel must be a whole number of nodes of at least 1, not {value!r}",
            where=where,
            fix="write --infra-parallel=4 (1 makes the nodes one after another)",
        )
    return number


def parse_pull(value: Any, where: str) -> PullPolicy:
    given_as_option = where.startswith("--") or where.endswith("(ini)")
    if where.endswith("(ini)") and isinstance(value, str):
        value = value.strip()
    if value not in PULL_CHOICES:
        raise SettingsError(
            f"pull must be one of {', '.join(PULL_CHOICES)}, not {value!r}",
            where=where,
            fix=f"give {where.split()[0]} one of missing (the default), always, never"
            if given_as_option
            else "write `pull: missing` (the default), `always` or `never`",
        )
    return cast(PullPolicy, value)


@final
@dataclass(frozen=True, slots=True)
class Option:
    """One setting: ``--infra-<noun>``, ini key ``infra_<noun>``, YAML key ``<noun>:``."""

    noun: str
    help: str
    """The command line's help (capital first, names the default)."""
    ini_help: str
    parse: Parse | None = None
    """None: ``settings.py`` reads it in its own way (platforms, the configuration file)."""
    default: Any = None
    kind: Kind = "text"
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    yaml: bool = True
    """False: not a YAML key (it depends on the machine or names the file itself)."""
    cli: str = ""
    ini: str = ""
    empty_is_unset: bool = False
    """An empty value on the command line falls through to the ini file and YAML."""

    @property
    def flag(self) -> str:
        return self.cli or "--infra-" + self.noun.replace("_", "-")

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def ini_key(self) -> str:
        return self.ini or f"infra_{self.noun}"

    @property
    def yaml_key(self) -> str | None:
        return self.noun if self.yaml else None


OPTIONS: tuple[Option, ...] = (
    Option(
        "platforms",
        "Platforms to run node tests on, comma-separated (e.g. debian-12,debian-13); "
        "repeatable; default: none, node tests are not run",
        "Platforms to run node tests on (like --infra-platform)",
        kind="names",
        metavar="NAMES",
        cli="--infra-platform",
    ),
    Option(
        "keep",
        "Keep nodes after the session: never, failure (nodes with a failed test) or always; default: never",
        "Keep nodes after the session: never, failure or always",
        parse_keep,
        "never",
        choices=KEEP_CHOICES,
    ),
    Option(
        "config",
        "Configuration file; default: infranode.yaml in the rootdir, else [tool.infranode] in pyproject.toml",
        "Configuration file (like --infra-config)",
        metavar="PATH",
        yaml=False,
    ),
    Option(
        "docker_host",
        "Docker daemon to use (unix://, tcp://, ssh://); default: DOCKER_HOST, then the local socket",
        "Docker daemon to use (like --infra-docker-host)",
        parse_docker_host,
        metavar="URL",
        empty_is_unset=True,
    ),
    Option(
        "boot_timeout",
        "How long a node's init may take to boot; default: 120",
        "Seconds a node's init may take to boot",
        _seconds("boot timeout"),
        DEFAULT_BOOT_TIMEOUT,
        kind="seconds",
    ),
    Option(
        "converge_timeout",
        "Stop a converge that runs longer than this and fail its node; default: 3600",
        "Seconds a converge may take (like --infra-converge-timeout)",
        _seconds("converge timeout"),
        DEFAULT_CONVERGE_TIMEOUT,
        kind="seconds",
    ),
    Option(
        "idempotence",
        "Converge each node a second time and fail its tests if anything changed; default: off",
        "Check that a second converge changes nothing (like --infra-idempotence)",
        _flag("idempotence"),
        False,
        kind="flag",
    ),
    Option(
        "reuse",
        "Take over a kept node (--infra-keep) whose platform and converge inputs are unchanged "
        "instead of making and converging a new one; default: off",
        "Take over unchanged kept nodes (like --infra-reuse)",
        _flag("reuse"),
        False,
        kind="flag",
    ),
    Option(
        "command_timeout",
        "Kill a testinfra command that runs longer than this in a node and fail its test; default: no limit",
        "Seconds a testinfra command may run (like --infra-command-timeout)",
        _seconds("command timeout"),
        None,
        kind="seconds",
    ),
    Option(
        "cache",
        "converge: keep each converged node as an image and start from it while every input "
        "of the converge is unchanged; default: off",
        "What to cache: off or converge (like --infra-cache)",
        parse_cache,
        "off",
        metavar="WHAT",
    ),
    # Not a YAML key: how many nodes to make at once depends on the machine, not on the project.
    Option(
        "parallel",
        "Make and converge (and at the end remove) up to N nodes at once; default: the number of CPUs",
        "Nodes made and removed at once (like --infra-parallel)",
        parse_parallel,
        0,
        kind="count",
        metavar="N",
        yaml=False,
    ),
    Option(
        "pull",
        "Pull base images: missing (only those not on the daemon), always (fresh from the "
        "registry), never (use the daemon's, else build or bootstrap); default: missing",
        "Pull base images: missing, always or never (like --infra-pull)",
        parse_pull,
        "missing",
        choices=PULL_CHOICES,
    ),
    Option(
        "allow_outside_project",
        "Let the configuration name files outside the project (the rootdir): scripts, "
        "playbooks and directories copied into nodes, absolute paths and symlinks that leave "
        "it; default: off, they are refused before any node exists",
        "Read files named by the configuration from outside the project (like --infra-allow-outside-project)",
        _flag("allow_outside_project"),
        False,
        kind="flag",
    ),
)
BY_NOUN: Mapping[str, Option] = {o.noun: o for o in OPTIONS}

FILE_ONLY_KEYS = ("provisioner", "nodes", "platform_definitions", "registry_mirror")
"""YAML keys with no command-line option: they describe the project, not one run."""
YAML_KEYS: tuple[str, ...] = (
    "platforms",
    "provisioner",
    *(o.noun for o in OPTIONS if o.yaml and o.noun != "platforms"),
    *FILE_ONLY_KEYS[1:],
)


@final
class RawOptions:
    """The values pytest handed us, before any merging, by noun: ``cli`` from the command line,
    ``ini`` from the ini file. A missing noun means "not given".

    Made from keywords ``cli_<noun>`` and ``ini_<noun>`` (``RawOptions(cli_keep="always")``).
    """

    __slots__ = ("cli", "ini")

    def __init__(self, **given: Any) -> None:
        self.cli: dict[str, Any] = {}
        self.ini: dict[str, Any] = {}
        for name, value in given.items():
            layer, _, noun = name.partition("_")
            if layer not in ("cli", "ini") or noun not in BY_NOUN:
                raise TypeError(f"RawOptions() got an unexpected keyword argument {name!r}")
            if value is not None:
                (self.cli if layer == "cli" else self.ini)[noun] = value

    @classmethod
    def read(cls, getoption: Callable[[str], Any], getini: Callable[[str], Any]) -> RawOptions:
        """Everything the command line and the ini file gave, through pytest's accessors."""
        raw = cls()
        for option in OPTIONS:
            cli = getoption(option.dest)
            if cli is not None:
                raw.cli[option.noun] = cli
            ini = getini(option.ini_key)
            if ini:
                raw.ini[option.noun] = list(ini) if option.kind == "names" else str(ini)
        return raw

    def __repr__(self) -> str:
        return f"RawOptions(cli={self.cli!r}, ini={self.ini!r})"
