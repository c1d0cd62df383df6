"""Settings: command-line options, ini keys and infranode.yaml folded into one frozen value.

Precedence, highest first: command line > ini (pytest.ini, tox.ini, [tool.pytest.ini_options])
> infranode.yaml or [tool.infranode] in pyproject.toml > default. The platform names given are
chosen here, once, from the catalog (built-ins, what plugins add, ``platform_definitions:``):
the rest of the plugin gets :class:`~pytest_infranode.platforms.Platform` values. Pure apart
from reading the configuration file; every error names the file and line it comes from.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import final

import yaml

from pytest_infranode.errors import SettingsError
from pytest_infranode.options import BY_NOUN
from pytest_infranode.options import DEFAULT_BOOT_TIMEOUT as DEFAULT_BOOT_TIMEOUT
from pytest_infranode.options import DEFAULT_CONVERGE_TIMEOUT
from pytest_infranode.options import OPTIONS
from pytest_infranode.options import YAML_KEYS as YAML_KEYS
from pytest_infranode.options import CacheMode
from pytest_infranode.options import KeepPolicy
from pytest_infranode.options import PullPolicy
from pytest_infranode.options import RawOptions as RawOptions
from pytest_infranode.platforms import Catalog
from pytest_infranode.platforms import Platform
from pytest_infranode.platforms import PlatformDefinition
from pytest_infranode.platforms import PluginPlatforms
from pytest_infranode.platforms import build_catalog
from pytest_infranode.platforms import check_definition
from pytest_infranode.platforms import split_names
from pytest_infranode.projectfiles import FileRule
from pytest_infranode.yamltext import QUOTE
from pytest_infranode.yamltext import as_text
from pytest_infranode.yamltext import first_not_text
from pytest_infranode.yamltext import shown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAMES = ("infranode.yaml", "infranode.yml")
NODE_KEYS = (
    "provisioner",
    "groups",
    "ports",
    "env",
    "capabilities",
    "sysctls",
    "depends_on",
    "side_effect",
    "hostname",
)


@final
@dataclass(frozen=True, slots=True)
class Source:
    """Where a piece of configuration was read: a file, and the line of each key in it."""

    path: Path | None = None
    label: str = "default"
    lines: Mapping[str, int] = field(default_factory=dict)

    def where(self, key: str = "") -> str:
        """``infranode.yaml:7 (provisioner.script)`` or the best we know."""
        if self.path is None:
            return self.label + (f" ({key})" if key else "")
        line = self.lines.get(key)
        loc = f"{self.path}:{line}" if line else str(self.path)
        if self.label and self.label != str(self.path):
            loc += f" {self.label}"
        return loc + (f" ({key})" if key else "")


@final
@dataclass(frozen=True, slots=True)
class ProvisionerConfig:
    """The chosen provisioner and its own options, as written by the user.

    :param name: the provisioner's name (``shell`` or another one a plugin adds).
    :param options: its options; the provisioner validates them.
    :param base_dir: relative file names in options are relative to this directory.
    :param source: where the options were written, for error messages.
    """

    name: str = "none"
    """Without a ``provisioner:`` the node stays bare (``provisioners/bare.py``)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = Path()
    source: Source = Source()
    files: FileRule | None = field(default=None, compare=False)
    """Where the files its options name may be (:mod:`~pytest_infranode.projectfiles`); None:
    inside ``base_dir``."""

    @property
    def file_rule(self) -> FileRule:
        return self.files if self.files is not None else FileRule(self.base_dir)


@final
@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One named node of ``nodes:`` (made on every platform of the session).

    :param name: its short name: hostname and network alias (``web``).
    :param provisioner: its own provisioner settings (else the top-level ``provisioner:``).
    :param groups: group names, for ``@pytest.mark.infra_node(group=...)``.
    :param ports: container TCP ports published to the test runner.
    :param env: environment variables of the container.
    :param capabilities: Linux capabilities added to the container.
    :param sysctls: namespaced kernel settings of the container (``net.*`` and the IPC ones), on
        top of the plugin's defaults (``net.ipv6.conf.lo.disable_ipv6: '0'``).
    :param depends_on: nodes converged before this one.
    :param side_effect: shell commands run in the node after its converge.
    :param hostname: its hostname, when it is not its name (``db.example.test``); another network
        alias too. Its inventory name stays its name.
    """

    name: str
    provisioner: ProvisionerConfig | None = None
    groups: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    side_effect: tuple[str, ...] = ()
    hostname: str = ""
    where: str = field(default="", compare=False)
    """Where the node was declared (``infranode.yaml:7 (nodes.web)``), for error messages."""


@final
@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a session needs to know, decided once in ``pytest_configure``."""

    platforms: tuple[Platform, ...] = ()
    """The platforms chosen, in the order given, each once."""
    provisioner: ProvisionerConfig = ProvisionerConfig()
    keep: KeepPolicy = "never"
    docker_host: str | None = None
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT
    converge_timeout: float = DEFAULT_CONVERGE_TIMEOUT
    config_file: Path | None = None
    platforms_source: str = "default"
    nodes: tuple[NodeConfig, ...] = ()
    """The named nodes of ``nodes:``, in file order; empty: one unnamed node per platform."""
    idempotence: bool = False
    reuse: bool = False
    command_timeout: float | None = None
    """Seconds a testinfra command may run in a node before it is killed (None: no limit)."""
    """Converge each node a second time and fail its tests if that changed anything."""
    platform_definitions: tuple[PlatformDefinition, ...] = ()
    """Platforms added or overridden in ``platform_definitions:`` (applied to the catalog)."""
    registry_mirror: str = ""
    """Docker Hub images are pulled through this registry (``mirror.gcr.io``) when set."""
    pull: PullPolicy = "missing"
    """Pull base images when missing (default), always, or never."""
    cache: CacheMode = "off"
    """``converge``: keep each converged node as an image and reuse it while its inputs are unchanged."""
    parallel: int = 0
    """How many nodes are made and converged at once; 0: the number of CPUs."""
    allow_outside_project: bool = False
    """Files the configuration names may be outside the project (the rootdir)."""
    catalog: Catalog = field(default_factory=Catalog, compare=False, repr=False)
    """What :attr:`platforms` were chosen from: the built-ins, what plugins add and
    ``platform_definitions:`` (only the built-ins when no platform is given)."""

    @property
    def enabled(self) -> bool:
        """True when the user asked for nodes (a platform was given somewhere)."""
        return bool(self.platforms)


def find_config_file(rootdir: Path, explicit: str | None) -> Path | None:
    """The configuration file to read: the explicit one, else one next to the rootdir."""
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = rootdir / path
        if not path.is_file():
            raise SettingsError(
                f"configuration file {explicit!r} does not exist",
                where=f"--infra-config / infra_config (looked at {path})",
                fix="give the path of an infranode.yaml, relative to the rootdir or absolute",
            )
        return path
    for name in CONFIG_NAMES:
        if (rootdir / name).is_file():
            return rootdir / name
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        return pyproject
    return None


def read_config_file(path: Path) -> tuple[dict[str, Any], Source]:
    """Read infranode.yaml, or the [tool.infranode] table of a pyproject.toml."""
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(read_config_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"{path} is not valid TOML: {exc}", where=str(path), fix="correct the TOML syntax"
            ) from None
        table = data.get("tool", {}).get("infranode", {})
        if not isinstance(table, dict):
            raise SettingsError("[tool.infranode] must be a table", where=str(path))
        return table, Source(path, "[tool.infranode]")
    return _read_yaml(path)


def read_config_text(path: Path) -> str:
    """The text of a configuration file, or a :class:`SettingsError` naming the file and the fix
    (never an ``OSError`` or ``UnicodeDecodeError`` that pytest would print as INTERNALERROR).

    :raises SettingsError: the file cannot be read, or is not UTF-8 text.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"configuration file {path.name} cannot be read: {reason}",
            where=str(path),
            fix=f"make it readable by this user (`chmod a+r {path}`, or check its owner), "
            "or point --infra-config at a readable file",
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SettingsError(
            f"configuration file {path.name} is not UTF-8 text: byte {data[exc.start]:#04x} "
            f"at line {line}, column {column} cannot be decoded",
            where=f"{path}:{line}:{column}",
            fix=f"save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 {path.name} > converted` "
            "and rename it back)",
        ) from None


def _read_yaml(path: Path) -> tuple[dict[str, Any], Source]:
    text = read_config_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SettingsError(
            f"{path.name} is not valid YAML: {exc.problem or exc.context}",
            where=loc,
            fix="correct the YAML syntax at that line (indentation, a missing ':' or quote)",
        ) from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path.name} is not valid YAML: {exc}", where=str(path)) from None
    if data is None:
        return {}, Source(path, str(path))
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise SettingsError(
            f"{path.name} must be a mapping of settings, not a {type(data).__name__}",
            where=f"{path}:1",
            fix="write keys such as `provisioner:` and `platforms:` at the top level",
        )
    return data, Source(path, str(path), _key_lines(node))


def _key_lines(node: yaml.MappingNode, prefix: str = "") -> dict[str, int]:
    """Line numbers (1-based) of every key, nested keys joined with dots."""
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key = prefix + str(key_node.value)
        lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            lines.update(_key_lines(value_node, key + "."))
    return lines


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], source: Source, prefix: str = "") -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SettingsError(
                f"unknown setting {prefix + str(key)!r}",
                where=source.where(prefix + str(key)),
                fix=f"{hint}Known settings: {', '.join(allowed)}",
            )


def _provisioner_from(value: Any, source: Source, base_dir: Path, rule: FileRule) -> ProvisionerConfig:
    if isinstance(value, str):
        return ProvisionerConfig(name=value, options={}, base_dir=base_dir, source=source, files=rule)
    if isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise SettingsError(
                "the provisioner needs a name",
                where=source.where("provisioner"),
                fix="write `provisioner: {name: shell, script: converge.sh}` or `provisioner: shell`",
            )
        options = {k: v for k, v in value.items() if k != "name"}
        return ProvisionerConfig(name=name, options=options, base_dir=base_dir, source=source, files=rule)
    raise SettingsError(
        f"`provisioner` must be a name or a mapping, not {type(value).__name__}",
        where=source.where("provisioner"),
        fix="write `provisioner: shell`, or a mapping with `name:` and the provisioner's options",
    )


def _no_plugins() -> PluginPlatforms:
    return ()


def build_settings(
    raw: RawOptions, rootdir: Path, plugin_platforms: Callable[[], PluginPlatforms] = _no_plugins
) -> Settings:
    """Merge command line, ini and configuration file into :class:`Settings`, and choose the
    platforms named there from the catalog.

    :param plugin_platforms: what plugins add to the catalog (the ``pytest_infranode_add_platforms``
        hook), asked only when a platform is given.
    :raises SettingsError: naming the option or file:line at fault (an unknown platform too).
    :raises PluginError: a plugin's platform the catalog refuses.
    """
    settings, names = _read_settings(raw, rootdir)
    if not names:
        return settings
    catalog = build_catalog(plugin_platforms(), settings.platform_definitions)
    chosen = catalog.select(names, where=settings.platforms_source)
    return dataclasses.replace(settings, platforms=tuple(chosen), catalog=catalog)


def configured_catalog(raw: RawOptions, rootdir: Path) -> Catalog:
    """The built-in catalog plus ``platform_definitions:`` of the configuration (the
    ``infranode`` command, which loads no pytest plugin); the platforms named are not chosen."""
    settings, _names = _read_settings(raw, rootdir)
    return build_catalog((), settings.platform_definitions)


def _read_settings(raw: RawOptions, rootdir: Path) -> tuple[Settings, list[str]]:
    """The settings as written, and the platform names given (not yet chosen)."""
    config_path = find_config_file(rootdir, raw.cli.get("config") or raw.ini.get("config"))
    data: dict[str, Any] = {}
    source = Source()
    if config_path is not None:
        data, source = read_config_file(config_path)
        if data:
            _check_keys(data, YAML_KEYS, source)
    base_dir = config_path.parent if config_path else rootdir
    names, platforms_source = _platforms_from(raw, data, source)

    def layered(noun: str) -> Any:
        """The command line, else the ini key, else the YAML key, else the default; each value
        is checked with the place it came from, for the error message."""
        option = BY_NOUN[noun]
        assert option.parse is not None
        cli = raw.cli.get(noun)
        if cli is not None and not (option.empty_is_unset and not cli):
            return option.parse(cli, option.flag)
        if raw.ini.get(noun):
            return option.parse(raw.ini[noun], f"{option.ini_key} (ini)")
        if option.yaml and noun in data:
            return option.parse(data[noun], source.where(noun))
        return option.default

    values = {o.noun: layered(o.noun) for o in OPTIONS if o.parse is not None}
    rule = FileRule(rootdir, allow_outside=values["allow_outside_project"])
    provisioner = (
        _provisioner_from(data["provisioner"], source, base_dir, rule)
        if "provisioner" in data
        else ProvisionerConfig(base_dir=base_dir, source=source, files=rule)
    )
    settings = Settings(
        **values,
        provisioner=provisioner,
        config_file=config_path,
        platforms_source=platforms_source,
        nodes=_nodes_from(data["nodes"], source, base_dir, rule) if "nodes" in data else (),
        platform_definitions=_platform_definitions_from(
            data.get("platform_definitions"), source, base_dir, rule
        ),
        registry_mirror=_registry_mirror(data.get("registry_mirror"), source),
    )
    return settings, names


def _platforms_from(raw: RawOptions, data: Mapping[str, Any], source: Source) -> tuple[list[str], str]:
    """The platform names and where they were given: ``--infra-platform`` (a list, comma-separated
    and repeatable) > ``infra_platforms`` (ini) > ``platforms:`` > none."""
    cli, ini = raw.cli.get("platforms"), raw.ini.get("platforms")
    if cli is not None and not split_names(cli):
        raise SettingsError(
            "--infra-platform was given without a platform",
            where="--infra-platform",
            fix="name at least one, e.g. --infra-platform=debian-12 (`infranode platforms` lists them)",
        )
    if cli:
        return split_names(cli), "--infra-platform"
    if ini:
        return split_names(ini), "infra_platforms (ini)"
    if "platforms" in data:
        value = data["platforms"]
        if not isinstance(value, (str, list)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(
                "`platforms` must be a list of platform names",
                where=source.where("platforms"),
                fix="write `platforms: [debian-12, debian-13]`",
            )
        return split_names(value), source.where("platforms")
    return [], "default"


_NODE_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


def _str_list(value: Any, where: str, what: str, example: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SettingsError(f"{what} must be a list of strings", where=where, fix=f"write `{example}`")
    bad = first_not_text(value)
    if bad is not None or None in value:
        raise SettingsError(
            f"{what} must be a list of strings, but holds {shown(bad)}",
            where=where,
            fix=f"{QUOTE}; or write `{example}`",
        )
    return tuple(str(v) for v in value)


def _env(value: Any, where: str, owner: str) -> dict[str, str]:
    """An ``env:`` mapping: names to strings (integers written as their digits)."""
    if not isinstance(value, dict):
        raise SettingsError(
            f"env of {owner} must be a mapping", where=where, fix="write `env: {NAME: value}`"
        )
    env: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or as_text(text) is None:
            raise SettingsError(
                f"env of {owner}: {name!r} must be a name with a string value, not {shown(text)}",
                where=where,
                fix=QUOTE,
            )
        env[name] = str(text)
    return env


# The kernel settings a container may have of its own (its namespaces'), as Docker accepts them:
# the IPC namespace's and the network namespace's. Any other key is the host's kernel and the
# daemon refuses it (or, for a privileged node, would change the host).
_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
_SYSCTL_IPC = (
    *("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem"),
    *("kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"),
)
_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
SYSCTL_FIX = (
    "only the node's own namespaces can be set: `net.*`, `fs.mqueue.*`, "
    + ", ".join(_SYSCTL_IPC)
    + "; write `sysctls: {net.ipv4.ip_forward: '1'}`"
)


def _sysctls(value: Any, node: str, where: str) -> dict[str, str]:
    """A node's ``sysctls:``: namespaced kernel keys to text values. Pure."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(
            f"sysctls of node {node!r} must be a mapping of kernel keys to values",
            where=where,
            fix="write `sysctls: {net.ipv4.ip_forward: '1'}`",
        )
    found: dict[str, str] = {}
    for key, text in value.items():
        name = key.replace("/", ".") if isinstance(key, str) else ""
        if not _SYSCTL_KEY.fullmatch(name) or not (name in _SYSCTL_IPC or name.startswith(_SYSCTL_PREFIXES)):
            raise SettingsError(
                f"sysctl {key!r} of node {node!r} is not a kernel setting a container may have",
                where=where,
                fix=SYSCTL_FIX,
            )
        if as_text(text) is None:
            raise SettingsError(
                f"sysctl {name!r} of node {node!r} must be text, not {shown(text)}",
                where=where,
                fix=QUOTE,
            )
        found[name] = str(text)
    return found


def _nodes_from(value: Any, source: Source, base_dir: Path, rule: FileRule) -> tuple[NodeConfig, ...]:
    """``nodes:`` → node configs in file order (the first one is the default node)."""
    if not isinstance(value, dict) or not value:
        raise SettingsError(
            "`nodes` must be a mapping of node names to their settings",
            where=source.where("nodes"),
            fix="write `nodes: {web: {depends_on: [db]}, db: {}}`",
        )
    found: dict[str, NodeConfig] = {}
    for name, body in value.items():
        key = f"nodes.{name}"
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name):
            raise SettingsError(
                f"node name {name!r} is not allowed",
                where=source.where(key),
                fix="use lower-case letters, digits and '-', starting with a letter (it is a hostname)",
            )
        body = body if body is not None else {}
        if not isinstance(body, dict):
            raise SettingsError(
                f"node {name!r} must be a mapping of settings",
                where=source.where(key),
                fix=f"write `{name}: {{groups: [...], ports: [...]}}` or `{name}: {{}}`",
            )
        _check_keys(body, NODE_KEYS, source, prefix=key + ".")
        ports = []
        for port in body.get("ports") or []:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise SettingsError(
                    f"port {port!r} of node {name!r} is not a TCP port number",
                    where=source.where(key + ".ports"),
                    fix="write `ports: [80, 5432]`",
                )
            ports.append(port)
        env = _env(body.get("env") or {}, source.where(key + ".env"), f"node {name!r}")
        where = source.where(key)
        found[name] = NodeConfig(
            name=name,
            provisioner=_provisioner_from(body["provisioner"], source, base_dir, rule)
            if "provisioner" in body
            else None,
            groups=_str_list(body.get("groups") or [], where, "groups", "groups: [frontend]"),
            ports=tuple(ports),
            env=env,
            capabilities=_str_list(
                body.get("capabilities") or [], where, "capabilities", "capabilities: [NET_ADMIN]"
            ),
            sysctls=_sysctls(body.get("sysctls"), name, source.where(key + ".sysctls")),
            depends_on=_str_list(body.get("depends_on") or [], where, "depends_on", "depends_on: [db]"),
            side_effect=_str_list(
                body.get("side_effect") or [], where, "side_effect", "side_effect: [systemctl restart app]"
            ),
            hostname=_hostname(body.get("hostname"), name, source.where(key + ".hostname")),
            where=where,
        )
    _check_hostnames(found, source)
    converge_order(found, source)  # refuses unknown names and cycles now, before any container
    return tuple(found.values())


def _check_hostnames(nodes: Mapping[str, NodeConfig], source: Source) -> None:
    """Each node answers on the network to its name and its hostname: no two the same."""
    owner: dict[str, str] = {name: name for name in nodes}
    for name, config in nodes.items():
        if not config.hostname or config.hostname == name:
            continue
        other = owner.setdefault(config.hostname, name)
        if other != name:
            raise SettingsError(
                f"hostname {config.hostname!r} of node {name!r} is "
                + ("the name" if other == config.hostname and other in nodes else "the hostname")
                + f" of node {other!r} too",
                where=source.where(f"nodes.{name}.hostname"),
                fix="give each node a hostname of its own (a node answers on the network to its name "
                "and to its hostname)",
            )


_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _hostname(value: Any, node: str, where: str) -> str:
    """A node's ``hostname:``: lower-case labels of letters, digits and '-' joined by dots, at
    most 63 characters (the kernel's limit for a hostname). Pure."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else ""
    labels = text.split(".")
    if not text or len(text) > 63 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise SettingsError(
            f"hostname {value!r} of node {node!r} is not a hostname",
            where=where,
            fix="use lower-case letters, digits and '-' (not at either end), labels joined by '.', "
            "63 characters at most: `hostname: db-1.example.test`",
        )
    return text


def converge_order(nodes: Mapping[str, NodeConfig], source: Source = Source()) -> list[str]:
    """Node names with every node after those it depends on (file order otherwise). Pure.

    :raises SettingsError: an unknown name in ``depends_on``, or a cycle.
    """
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise SettingsError(
                f"nodes depend on each other in a circle: {cycle}",
                where=source.where(f"nodes.{name}.depends_on"),
                fix="remove one of these depends_on entries",
            )
        visiting.append(name)
        for dep in nodes[name].depends_on:
            if dep not in nodes:
                close = difflib.get_close_matches(dep, list(nodes), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SettingsError(
                    f"node {name!r} depends on {dep!r}, which is not in `nodes:`",
                    where=source.where(f"nodes.{name}.depends_on"),
                    fix=f"{hint}Nodes: {', '.join(nodes)}",
                )
            visit(dep)
        visiting.pop()
        order.append(name)

    for name in nodes:
        visit(name)
    return order


def _platform_definitions_from(
    value: Any, source: Source, base_dir: Path, rule: FileRule
) -> tuple[PlatformDefinition, ...]:
    """``platform_definitions:`` → checked definitions, each knowing the file:line of its keys."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SettingsError(
            "`platform_definitions` must be a mapping of platform names to their settings",
            where=source.where("platform_definitions"),
            fix="write `platform_definitions: {debian-12: {packages: [curl]}}`",
        )
    found = []
    for name, body in value.items():
        key = f"platform_definitions.{name}"
        body = body if body is not None else {}
        if not isinstance(body, dict):
            raise SettingsError(
                f"platform {name!r} must be a mapping of settings",
                where=source.where(key),
                fix=f"write `{name}: {{image: REFERENCE}}` or `{name}: {{base: debian-12}}`",
            )
        where = {"": source.where(key)}
        where.update({str(k): source.where(f"{key}.{k}") for k in body})
        defn = PlatformDefinition(name=str(name), body=body, where=where, base_dir=str(base_dir), files=rule)
        check_definition(defn)
        found.append(defn)
    return tuple(found)


def _registry_mirror(value: Any, source: Source) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or "://" in value or not value.strip("/"):
        raise SettingsError(
            f"`registry_mirror` must be a registry host (and path), not {value!r}",
            where=source.where("registry_mirror"),
            fix="write `registry_mirror: mirror.gcr.io` or `registry_mirror: registry.corp:5000/dockerhub`",
        )
    return value.strip("/")
