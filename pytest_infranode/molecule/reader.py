"""Reading a Molecule scenario: ``molecule/<scenario>/molecule.yml`` (with Molecule's base config
``.config/molecule/config.yml``, ``.env.yml`` and variable interpolation), the role folder's
layout, and what its playbooks and specs rely on. Pure apart from reading files.

Every mistake in the files is a :class:`~pytest_infranode.errors.SettingsError` that names the
file and line and says how to fix it, in the style of infranode.yaml's errors; the command line
and the plugin show it without a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_infranode.errors import SettingsError
from pytest_infranode.molecule import scan
from pytest_infranode.molecule.interpolation import interpolate
from pytest_infranode.molecule.interpolation import molecule_variables
from pytest_infranode.molecule.model import DEFAULT_PLAYBOOK_FILES
from pytest_infranode.molecule.model import DEFAULT_TEST_SEQUENCE
from pytest_infranode.molecule.model import PLAYBOOKS
from pytest_infranode.molecule.model import Dependency
from pytest_infranode.molecule.model import Inventory
from pytest_infranode.molecule.model import MoleculePlatform
from pytest_infranode.molecule.model import MoleculeProvisioner
from pytest_infranode.molecule.model import Network
from pytest_infranode.molecule.model import Playbooks
from pytest_infranode.molecule.model import Role
from pytest_infranode.molecule.model import Scenario
from pytest_infranode.molecule.model import Variable
from pytest_infranode.molecule.model import Verifier

MOLECULE_DIR = "molecule"
MOLECULE_FILE = "molecule.yml"
BASE_CONFIG = Path(".config") / "molecule" / "config.yml"
ENV_FILE = ".env.yml"

TOP_KEYS = (
    "ansible",
    "dependency",
    "driver",
    "lint",
    "log",
    "platforms",
    "prerun",
    "provisioner",
    "role_name_check",
    "scenario",
    "shared_state",
    "verifier",
)
"""The keys Molecule's schema allows at the top of molecule.yml (it refuses any other)."""
PLATFORM_KEYS = (
    "name",
    "image",
    "registry",
    "dockerfile",
    "pre_build_image",
    "groups",
    "children",
    "hostname",
    "networks",
    "network_mode",
    "capabilities",
    "tmpfs",
    "volumes",
    "env",
    "environment",
    "command",
    "override_command",
    "cgroupns_mode",
    "privileged",
    "published_ports",
)
"""Platform keys the model holds; the others are kept in ``MoleculePlatform.other``."""
VERIFIERS = ("ansible", "testinfra", "goss", "inspec")
_VERIFIER_KEYS = ("name", "enabled", "directory", "options", "env", "additional_files_or_dirs")
_SCENARIO_KEY = re.compile(r"[a-z_]+_sequence|name")


# --- where things are -------------------------------------------------------------------------


def find_role_dir(start: Path) -> Path:
    """The folder that holds ``molecule/``: ``start`` or the closest folder above it.

    :raises SettingsError: when neither ``start`` nor a folder above it has one.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / MOLECULE_DIR).is_dir() and scenario_names(folder):
            return folder
    raise SettingsError(
        f"no Molecule scenario here: {start} has no {MOLECULE_DIR}/<scenario>/{MOLECULE_FILE}",
        where=str(start),
        fix="run the command in the role's folder (the one with molecule/), or give it with --role DIR",
    )


def scenario_names(role_dir: Path) -> tuple[str, ...]:
    """Every scenario of the role, sorted: the folders of ``molecule/`` with a molecule.yml."""
    root = role_dir / MOLECULE_DIR
    if not root.is_dir():
        return ()
    return tuple(sorted(p.name for p in root.iterdir() if (p / MOLECULE_FILE).is_file()))


def read_role(role_dir: Path) -> Role:
    """The role folder's layout: its name, the name Molecule installs it under, its scenarios."""
    role_dir = role_dir.resolve()
    galaxy: dict[str, Any] = {}
    meta = next(
        (role_dir / "meta" / n for n in ("main.yml", "main.yaml") if (role_dir / "meta" / n).is_file()), None
    )
    if meta is not None:
        try:
            data = yaml.safe_load(meta.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            data = None  # a broken meta/main.yml is the role's business: Ansible reports it
        if isinstance(data, dict) and isinstance(data.get("galaxy_info"), dict):
            galaxy = data["galaxy_info"]
    return Role(
        directory=role_dir,
        name=role_dir.name,
        fqrn=_fqrn(galaxy, role_dir) if meta is not None else "",
        is_role=meta is not None or (role_dir / "tasks" / "main.yml").is_file(),
        scenarios=scenario_names(role_dir),
    )


def _fqrn(galaxy: Mapping[str, Any], role_dir: Path) -> str:
    """The name ansible-compat links the role under for Molecule: ``namespace.role_name``
    (namespace, else author; role_name, else the folder's name without ``ansible-role-``)."""
    namespace = str(galaxy.get("namespace") or galaxy.get("author") or "")
    name = str(galaxy.get("role_name") or "")
    if not name:
        name = re.sub(r"(ansible-|ansible-role-)", "", role_dir.name).split(".", maxsplit=2)[-1]
    return f"{namespace}.{name}" if namespace else name


# --- YAML with lines ----------------------------------------------------------------------------


def load_yaml(path: Path, text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A YAML mapping and the ``file:line`` of every key (``platforms.0.name``) and list item.

    :raises SettingsError: invalid YAML, or not a mapping, naming the file and line.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SettingsError(
            f"{path.name} is not valid YAML: {exc.problem or exc.context}",
            where=f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path),
            fix="correct the YAML syntax at that line (indentation, a missing ':' or quote)",
        ) from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path.name} is not valid YAML: {exc}", where=str(path)) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise SettingsError(
            f"{path.name} must be a mapping, not a {type(data).__name__}",
            where=f"{path}:1",
            fix="write Molecule's keys (`driver:`, `platforms:`, `provisioner:` …) at the top level",
        )
    lines: dict[str, str] = {}
    _lines(node, "", path, lines)
    return data, lines


def _lines(node: yaml.Node, prefix: str, path: Path, out: dict[str, str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = prefix + str(key_node.value)
                out[key] = f"{path}:{key_node.start_mark.line + 1}"
                _lines(value_node, key + ".", path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}{index}"
            out[key] = f"{path}:{item.start_mark.line + 1}"
            _lines(item, key + ".", path, out)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Molecule's merge of a base config and molecule.yml: mappings merge key by key, anything
    else (lists included) is replaced. Pure."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


# --- the scenario -------------------------------------------------------------------------------


def read_scenario(
    role_dir: Path,
    name: str = "default",
    *,
    environ: Mapping[str, str] | None = None,
    base_configs: Sequence[Path] | None = None,
    runtime: Mapping[str, str] | None = None,
) -> Scenario:
    """Read and check one scenario of the role in ``role_dir``.

    :param environ: the environment molecule.yml's variables are read from (default
        ``os.environ``); ``.env.yml`` in the role's folder adds to it, as in Molecule.
    :param base_configs: base configs merged under molecule.yml (default: the first
        ``.config/molecule/config.yml`` in the role's folder or a folder above it, up to the
        repository's root).
    :param runtime: what a session knows of the variables Molecule sets only while it runs
        (``MOLECULE_INVENTORY_FILE`` …); without it they stay ``${NAME}``.
    :raises SettingsError: naming the file and line at fault, and how to fix it.
    """
    role = read_role(role_dir)
    directory = role.directory / MOLECULE_DIR / name
    file = directory / MOLECULE_FILE
    if not file.is_file():
        close = difflib.get_close_matches(name, role.scenarios, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SettingsError(
            f"no Molecule scenario {name!r} in {role.directory}",
            where=str(file),
            fix=f"{hint}Scenarios here: {', '.join(role.scenarios) or 'none'}",
        )
    env = dict(os.environ if environ is None else environ)
    env.update(_env_file(role.directory / ENV_FILE))
    sources = [*(_base_configs(role.directory) if base_configs is None else base_configs), file]
    data: dict[str, Any] = {}
    where: dict[str, str] = {}
    variables: dict[str, Variable] = {}
    for source in sources:
        known = molecule_variables(
            role_dir=role.directory,
            scenario_dir=directory,
            scenario_name=name,
            molecule_file=file,
            driver=_driver_guess(data),
        )
        known.update(runtime or {})
        text, used = interpolate(source.read_text(encoding="utf-8"), path=source, environ=env, molecule=known)
        for variable in used:
            variables.setdefault(variable.name, variable)
        part, lines = load_yaml(source, text)
        data = merge(data, part)
        where.update(lines)
    return _Builder(role, directory, file, data, where).build(tuple(sources), tuple(variables.values()))


def _driver_guess(data: Mapping[str, Any]) -> str:
    driver = data.get("driver")
    return str(driver.get("name")) if isinstance(driver, dict) and driver.get("name") else "default"


def _base_configs(role_dir: Path) -> list[Path]:
    for folder in (role_dir, *role_dir.parents):
        if (folder / BASE_CONFIG).is_file():
            return [folder / BASE_CONFIG]
        if (folder / ".git").exists():
            break
    return []


def _env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    data, _ = load_yaml(path, path.read_text(encoding="utf-8"))
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


class _Builder:
    """Turns the merged data of one scenario into the model, checking each value on the way."""

    def __init__(
        self, role: Role, directory: Path, file: Path, data: dict[str, Any], where: dict[str, str]
    ) -> None:
        self.role = role
        self.directory = directory
        self.file = file
        self.data = data
        self.where = where

    def at(self, key: str) -> str:
        probe = key
        while probe:
            if probe in self.where:
                return self.where[probe]
            probe = probe.rpartition(".")[0]
        return str(self.file)

    def error(self, key: str, what: str, fix: str) -> SettingsError:
        return SettingsError(
            f"{MOLECULE_DIR}/{self.file.parent.name}/{MOLECULE_FILE}: {what}", where=self.at(key), fix=fix
        )

    # typed reads
    def mapping(self, value: Any, key: str, example: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(
                key, f"`{key}` must be a mapping, not {type(value).__name__}", f"write `{example}`"
            )
        return {str(k): v for k, v in value.items()}

    def strings(self, value: Any, key: str, example: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
            raise self.error(key, f"`{key}` must be a list of strings", f"write `{example}`")
        return tuple(str(v) for v in value)

    def text(self, value: Any, key: str, example: str) -> str:
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(
                key, f"`{key}` must be a string, not {type(value).__name__}", f"write `{example}`"
            )
        return str(value)

    def boolean(self, value: Any, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(
                key,
                f"`{key}` must be true or false, not {value!r}",
                f"write `{key.rsplit('.', 1)[-1]}: true`",
            )
        return value

    def env(self, value: Any, key: str) -> dict[str, str]:
        found = self.mapping(value, key, "env: {NAME: value}")
        for name, item in found.items():
            if isinstance(item, (dict, list)):
                raise self.error(
                    f"{key}.{name}", f"`{key}.{name}` must be a string", f'write `{name}: "value"`'
                )
        return {name: "" if item is None else str(item) for name, item in found.items()}

    def build(self, sources: tuple[Path, ...], variables: tuple[Variable, ...]) -> Scenario:
        for key in self.data:
            if key not in TOP_KEYS:
                close = difflib.get_close_matches(str(key), TOP_KEYS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error(
                    str(key),
                    f"unknown key {key!r} (Molecule refuses it too)",
                    f"{hint}Keys: {', '.join(TOP_KEYS)}",
                )
        driver = self.mapping(self.data.get("driver"), "driver", "driver: {name: docker}")
        driver_name = self.text(driver.get("name"), "driver.name", "driver: {name: docker}") or "default"
        scenario = self.mapping(
            self.data.get("scenario"), "scenario", "scenario: {test_sequence: [converge]}"
        )
        for key in scenario:
            if not _SCENARIO_KEY.fullmatch(key):
                raise self.error(
                    f"scenario.{key}",
                    f"unknown key `scenario.{key}`",
                    "use `name` or `<action>_sequence` (test_sequence, converge_sequence …)",
                )
        name = (
            self.text(scenario.get("name"), "scenario.name", "scenario: {name: default}")
            or self.directory.name
        )
        sequence = self.strings(
            scenario.get("test_sequence"), "scenario.test_sequence", "test_sequence: [converge, verify]"
        )
        platforms = self.platforms()
        provisioner = self.provisioner()
        verifier = self.verifier()
        playbooks = list(provisioner.playbooks.named().values())
        role_files = sorted(
            path
            for part in ("tasks", "handlers", "templates")
            for path in (self.role.directory / part).rglob("*")
            if path.is_file() and self.role.is_role
        )
        uses = (
            scan.scan_playbooks(playbooks)
            + scan.scan_specs(verifier.tests)
            + scan.scan_cross_host([*playbooks, *role_files])
        )
        return Scenario(
            name=name,
            directory=self.directory,
            file=self.file,
            role=self.role,
            platforms=platforms,
            provisioner=provisioner,
            verifier=verifier,
            dependency=self.dependency(),
            driver=driver_name,
            driver_options=self.mapping(driver.get("options"), "driver.options", "options: {managed: true}"),
            test_sequence=sequence if "test_sequence" in scenario else DEFAULT_TEST_SEQUENCE,
            sources=sources,
            where=dict(self.where),
            variables=variables,
            uses=tuple(uses),
            other={
                k: v
                for k, v in self.data.items()
                if k
                not in ("ansible", "dependency", "driver", "platforms", "provisioner", "scenario", "verifier")
            },
        )

    # platforms
    def platforms(self) -> tuple[MoleculePlatform, ...]:
        value = self.data.get("platforms")
        example = "platforms: [{name: instance, image: debian:12}]"
        if not isinstance(value, list) or not value:
            raise self.error(
                "platforms",
                "the scenario has no `platforms:` list: there is nothing to make",
                f"write `{example}`",
            )
        found: list[MoleculePlatform] = []
        for index, body in enumerate(value):
            key = f"platforms.{index}"
            if not isinstance(body, dict):
                raise self.error(
                    key,
                    f"platform {index + 1} must be a mapping, not {type(body).__name__}",
                    "write `- {name: instance, image: debian:12}`",
                )
            name = self.text(body.get("name"), f"{key}.name", "name: instance")
            if not name:
                raise self.error(
                    key,
                    f"platform {index + 1} has no `name`",
                    "give it `name: instance` (its inventory host name)",
                )
            if any(p.name == name for p in found):
                raise self.error(
                    f"{key}.name",
                    f"two platforms are called {name!r}",
                    "give each platform its own name: it is a host of the inventory",
                )
            found.append(self.platform(body, key, name))
        return tuple(found)

    def platform(self, body: dict[str, Any], key: str, name: str) -> MoleculePlatform:
        image = self.text(body.get("image"), f"{key}.image", "image: debian:12")
        registry = self.mapping(
            body.get("registry"), f"{key}.registry", "registry: {url: registry.example.com}"
        )
        url = self.text(registry.get("url"), f"{key}.registry.url", "url: registry.example.com")
        if url and image:
            image = f"{url.rstrip('/')}/{image}"
        pre_built = self.boolean(body.get("pre_build_image"), f"{key}.pre_build_image", False)
        dockerfile = ""
        if not pre_built:
            written = (
                self.text(body.get("dockerfile"), f"{key}.dockerfile", "dockerfile: Dockerfile.j2")
                or "Dockerfile.j2"
            )
            path = self.directory / written
            dockerfile = str(path) if path.is_file() else ""  # Molecule then builds its own default
        networks = []
        raw_networks = body.get("networks")
        if raw_networks is not None and not isinstance(raw_networks, list):
            raise self.error(
                f"{key}.networks", "`networks` must be a list", "write `networks: [{name: my-net}]`"
            )
        for index, net in enumerate(raw_networks or []):
            net_key = f"{key}.networks.{index}"
            if not isinstance(net, dict) or not isinstance(net.get("name"), str):
                raise self.error(net_key, "each network needs a `name`", "write `networks: [{name: my-net}]`")
            networks.append(
                Network(
                    name=net["name"],
                    aliases=self.strings(net.get("aliases"), f"{net_key}.aliases", "aliases: [db]"),
                    ipv4_address=self.text(
                        net.get("ipv4_address"), f"{net_key}.ipv4_address", "ipv4_address: 10.0.0.5"
                    ),
                )
            )
        command = body.get("command")
        if isinstance(command, list):
            command = shlex.join(self.strings(command, f"{key}.command", "command: /sbin/init"))
        cgroupns = self.text(body.get("cgroupns_mode"), f"{key}.cgroupns_mode", "cgroupns_mode: host")
        if cgroupns and cgroupns not in ("host", "private"):
            raise self.error(
                f"{key}.cgroupns_mode",
                f"`cgroupns_mode` must be host or private, not {cgroupns!r}",
                "write `cgroupns_mode: host`",
            )
        hostname = body.get("hostname")
        env = self.env(body.get("environment"), f"{key}.environment")
        env.update(self.env(body.get("env"), f"{key}.env"))
        return MoleculePlatform(
            name=name,
            image=image,
            dockerfile=dockerfile,
            pre_build_image=pre_built,
            groups=self.strings(body.get("groups"), f"{key}.groups", "groups: [web]"),
            children=self.strings(body.get("children"), f"{key}.children", "children: [web_children]"),
            hostname=""
            if hostname is None or hostname is False
            else self.text(hostname, f"{key}.hostname", "hostname: web1"),
            networks=tuple(networks),
            network_mode=self.text(body.get("network_mode"), f"{key}.network_mode", "network_mode: bridge"),
            capabilities=self.strings(
                body.get("capabilities"), f"{key}.capabilities", "capabilities: [NET_ADMIN]"
            ),
            tmpfs=self.strings(body.get("tmpfs"), f"{key}.tmpfs", "tmpfs: [/run, /tmp]"),
            volumes=self.strings(
                body.get("volumes"), f"{key}.volumes", "volumes: ['/sys/fs/cgroup:/sys/fs/cgroup:rw']"
            ),
            env=env,
            command=self.text(command, f"{key}.command", "command: /sbin/init"),
            override_command=self.boolean(body.get("override_command"), f"{key}.override_command", True),
            cgroupns=cgroupns,
            privileged=self.boolean(body.get("privileged"), f"{key}.privileged", False),
            published_ports=self.strings(
                body.get("published_ports"), f"{key}.published_ports", "published_ports: ['8080:80']"
            ),
            other={k: v for k, v in body.items() if k not in PLATFORM_KEYS},
            key=key,
        )

    # provisioner
    def provisioner(self) -> MoleculeProvisioner:
        prov = self.mapping(self.data.get("provisioner"), "provisioner", "provisioner: {name: ansible}")
        ansible = self.mapping(self.data.get("ansible"), "ansible", "ansible: {cfg: {defaults: {}}}")
        name = self.text(prov.get("name"), "provisioner.name", "name: ansible") or "ansible"
        if name != "ansible":
            raise self.error(
                "provisioner.name",
                f"unknown provisioner {name!r}: Molecule has only `ansible`",
                "write `provisioner: {name: ansible}`",
            )

        def either(legacy: str, newer: str) -> tuple[Any, str]:
            """A legacy ``provisioner.X`` or its ``ansible.Y`` (Molecule 25+), and the key it was at."""
            if legacy in prov:
                return prov[legacy], f"provisioner.{legacy}"
            value: Any = ansible
            for part in newer.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value, f"ansible.{newer}"

        config_options, config_key = either("config_options", "cfg")
        sections = self.mapping(config_options, config_key, "config_options: {defaults: {forks: 5}}")
        for section, options in sections.items():
            self.mapping(options, f"{config_key}.{section}", f"{section}: {{option: value}}")
        env, env_key = either("env", "env")
        args, args_key = either("ansible_args", "executor.args.ansible_playbook")
        inventory = self.mapping(
            prov.get("inventory"), "provisioner.inventory", "inventory: {group_vars: {all: {x: 1}}}"
        )
        for key in inventory:
            if key not in ("group_vars", "host_vars", "links", "hosts"):
                raise self.error(
                    f"provisioner.inventory.{key}",
                    f"unknown key `provisioner.inventory.{key}`",
                    "use group_vars, host_vars, links or hosts",
                )
        group_vars = self.mapping(
            inventory.get("group_vars"), "provisioner.inventory.group_vars", "group_vars: {all: {x: 1}}"
        )
        host_vars = self.mapping(
            inventory.get("host_vars"), "provisioner.inventory.host_vars", "host_vars: {instance: {x: 1}}"
        )
        for kind, table in (("group_vars", group_vars), ("host_vars", host_vars)):
            for owner, variables in table.items():
                self.mapping(
                    variables, f"provisioner.inventory.{kind}.{owner}", f"{owner}: {{variable: value}}"
                )
        links = self.mapping(
            inventory.get("links"),
            "provisioner.inventory.links",
            "links: {group_vars: ../../inventory/group_vars/}",
        )
        for kind, target in links.items():
            if kind not in ("group_vars", "host_vars", "hosts"):
                raise self.error(
                    f"provisioner.inventory.links.{kind}",
                    f"unknown link {kind!r}",
                    "link group_vars, host_vars or hosts",
                )
            self.text(target, f"provisioner.inventory.links.{kind}", f"{kind}: ../../inventory/{kind}/")
        known = (
            "name",
            "config_options",
            "env",
            "options",
            "ansible_args",
            "connection_options",
            "inventory",
            "playbooks",
            "log",
            "children",
        )
        return MoleculeProvisioner(
            playbooks=self.playbooks(*either("playbooks", "playbooks")),
            name=name,
            config_options={s: dict(o or {}) for s, o in sections.items()},
            env=self.env(env, env_key),
            options=self.mapping(prov.get("options"), "provisioner.options", "options: {diff: true}"),
            ansible_args=self.strings(args, args_key, "ansible_args: [--diff]"),
            connection_options=self.mapping(
                prov.get("connection_options"),
                "provisioner.connection_options",
                "connection_options: {ansible_user: root}",
            ),
            inventory=Inventory(
                group_vars={g: dict(v or {}) for g, v in group_vars.items()},
                host_vars={h: dict(v or {}) for h, v in host_vars.items()},
                links={k: str(v) for k, v in links.items()},
                hosts=self.mapping(
                    inventory.get("hosts"), "provisioner.inventory.hosts", "hosts: {all: {hosts: {}}}"
                ),
            ),
            other={k: v for k, v in prov.items() if k not in known},
        )

    def playbooks(self, value: Any, key: str) -> Playbooks:
        written = self.mapping(value, key, "playbooks: {converge: converge.yml}")
        for name in written:
            if name not in PLAYBOOKS:
                close = difflib.get_close_matches(name, PLAYBOOKS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error(
                    f"{key}.{name}", f"unknown playbook {name!r}", f"{hint}Playbooks: {', '.join(PLAYBOOKS)}"
                )
        found: dict[str, Path | None] = {}
        for name in PLAYBOOKS:
            given = self.text(written.get(name), f"{key}.{name}", f"{name}: {name}.yml")
            path = self.directory / (given or DEFAULT_PLAYBOOK_FILES[name])
            if (
                name == "converge"
                and not given
                and not path.is_file()
                and (self.directory / "playbook.yml").is_file()
            ):
                path = self.directory / "playbook.yml"  # Molecule's deprecated name, still read
            if given and not path.is_file():
                raise self.error(
                    f"{key}.{name}",
                    f"the {name} playbook {given!r} does not exist (looked at {path})",
                    "give a path relative to the scenario's folder, or remove the entry",
                )
            found[name] = path if path.is_file() else None
        converge = found.pop("converge")
        if converge is None:
            raise self.error(
                key if written else "provisioner",
                f"the scenario has no converge playbook ({self.directory / 'converge.yml'} does not exist)",
                "write converge.yml next to molecule.yml, or name it in `provisioner.playbooks.converge`",
            )
        return Playbooks(converge=converge, **found)

    # verifier and dependency
    def verifier(self) -> Verifier:
        body = self.mapping(self.data.get("verifier"), "verifier", "verifier: {name: testinfra}")
        for key in body:
            if key not in _VERIFIER_KEYS:
                raise self.error(
                    f"verifier.{key}", f"unknown key `verifier.{key}`", f"Keys: {', '.join(_VERIFIER_KEYS)}"
                )
        name = self.text(body.get("name"), "verifier.name", "name: testinfra") or "ansible"
        if name not in VERIFIERS:
            close = difflib.get_close_matches(name, VERIFIERS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.error(
                "verifier.name", f"unknown verifier {name!r}", f"{hint}Verifiers: {', '.join(VERIFIERS)}"
            )
        directory = self.directory / (
            self.text(body.get("directory"), "verifier.directory", "directory: tests") or "tests"
        )
        extra = self.strings(
            body.get("additional_files_or_dirs"),
            "verifier.additional_files_or_dirs",
            "additional_files_or_dirs: ['../shared/*']",
        )
        tests: list[Path] = []
        if name == "testinfra" and directory.is_dir():
            for root, _dirs, files in os.walk(directory, followlinks=True):
                tests += [Path(root, f) for f in files if f.startswith("test_") and f.endswith(".py")]
            for pattern in extra:
                tests += [p for p in directory.glob(pattern) if p not in tests]
        return Verifier(
            directory=directory,
            name=name,
            enabled=self.boolean(body.get("enabled"), "verifier.enabled", True),
            tests=tuple(sorted(tests)),
            options=self.mapping(body.get("options"), "verifier.options", "options: {v: true}"),
            env=self.env(body.get("env"), "verifier.env"),
            additional_files_or_dirs=extra,
        )

    def dependency(self) -> Dependency:
        body = self.mapping(self.data.get("dependency"), "dependency", "dependency: {name: galaxy}")
        name = self.text(body.get("name"), "dependency.name", "name: galaxy") or "galaxy"
        if name not in ("galaxy", "shell"):
            raise self.error(
                "dependency.name", f"unknown dependency manager {name!r}", "use `galaxy` or `shell`"
            )
        options = self.mapping(
            body.get("options"), "dependency.options", "options: {requirements-file: requirements.yml}"
        )
        files = [options.get(k) for k in ("role-file", "requirements-file")]
        candidates = [self.directory / str(f) for f in files if f] or [
            self.directory / "requirements.yml",
            self.directory / "collections.yml",
        ]
        return Dependency(
            name=name,
            enabled=self.boolean(body.get("enabled"), "dependency.enabled", True),
            command=self.text(
                body.get("command"),
                "dependency.command",
                "command: ansible-galaxy install -r requirements.yml",
            ),
            options=options,
            requirements=tuple(p for p in candidates if p.is_file()) if name == "galaxy" else (),
        )
