"""A Molecule scenario as frozen values: what ``molecule/<scenario>/molecule.yml`` and the role's
folder say, after Molecule's own defaults, base config and variable interpolation. Pure.

Only what the import needs is modelled; every key of a platform that is not is kept, as written,
in :attr:`MoleculePlatform.other`, so that the translation can list it instead of dropping it
silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal
from typing import final

DEFAULT_TEST_SEQUENCE = (
    "dependency",
    "cleanup",
    "destroy",
    "syntax",
    "create",
    "prepare",
    "converge",
    "idempotence",
    "side_effect",
    "verify",
    "cleanup",
    "destroy",
)
"""Molecule's ``scenario.test_sequence`` when the scenario gives none."""

PLAYBOOKS = ("create", "prepare", "converge", "side_effect", "verify", "cleanup", "destroy")
"""The playbooks of ``provisioner.playbooks`` (``ansible.playbooks`` in newer Molecule)."""

DEFAULT_PLAYBOOK_FILES = {name: f"{name}.yml" for name in PLAYBOOKS}
"""Molecule looks for these next to molecule.yml when ``playbooks:`` does not name one."""

VariableKind = Literal["environment", "default", "molecule", "runtime", "unset"]


@final
@dataclass(frozen=True, slots=True)
class Variable:
    """One ``$NAME`` / ``${NAME}`` / ``${NAME:-default}`` of molecule.yml and what it became.

    :param name: the variable's name.
    :param where: ``file:line`` of its first use.
    :param kind: ``environment`` (read from the environment given to the reader), ``default``
        (not set: its ``:-``/``-`` default was used), ``molecule`` (one of Molecule's own, known
        before any instance exists: the project or scenario directory …), ``runtime`` (one of
        Molecule's, known only while it runs: the inventory file, the ephemeral directory; kept as
        written), ``unset`` (not set and no default: replaced by "", as Molecule does).
    :param value: what it was replaced with ("" for ``runtime``: it was kept as written).
    """

    name: str
    where: str
    kind: VariableKind
    value: str = ""


@final
@dataclass(frozen=True, slots=True)
class Network:
    """One entry of a platform's ``networks:`` (docker driver)."""

    name: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""


@final
@dataclass(frozen=True, slots=True)
class MoleculePlatform:
    """One entry of ``platforms:``: one instance (a host of the inventory).

    :param name: the instance's name: its inventory host name.
    :param image: the image reference (``registry.url`` prepended when given).
    :param dockerfile: the Dockerfile (a Jinja2 template in Molecule) the image is built from, as
        a path; "" when the image is used as it is (``pre_build_image: true``) or Molecule would use
        its own default Dockerfile.
    :param pre_build_image: ``pre_build_image:``; false (Molecule builds its default Dockerfile on
        top of the image) unless the scenario says so.
    :param groups: inventory groups (``ungrouped`` in Molecule when none).
    :param children: child groups of each of its groups.
    :param hostname: the container's hostname; "" when not given (it is then ``name``).
    :param networks: networks it joins; ``network_mode``: a mode instead (``host``, ``bridge``).
    :param capabilities: Linux capabilities added to the container.
    :param tmpfs: tmpfs mounts, ``path`` or ``path:options``.
    :param volumes: volumes and bind mounts, ``source:target[:mode]``.
    :param env: environment variables of the container.
    :param command: the container's command ("" when not given).
    :param override_command: false: the image's own command runs (Molecule's default replaces it
        with a sleep loop).
    :param cgroupns: ``cgroupns_mode:`` (``host`` or ``private``); "" when not given.
    :param privileged: ``privileged:``.
    :param published_ports: ``published_ports:`` as written (``[ip:][host:]container[/proto]``).
    :param other: every other key of the entry, as written.
    :param key: ``platforms.N``: the entry's key in :attr:`Scenario.where`.
    """

    name: str
    image: str = ""
    dockerfile: str = ""
    pre_build_image: bool = False
    groups: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    hostname: str = ""
    networks: tuple[Network, ...] = ()
    network_mode: str = ""
    capabilities: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    command: str = ""
    override_command: bool = True
    cgroupns: str = ""
    privileged: bool = False
    published_ports: tuple[str, ...] = ()
    other: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""


@final
@dataclass(frozen=True, slots=True)
class Inventory:
    """``provisioner.inventory``: variables Molecule writes into its inventory, and links.

    :param group_vars: group name → variables.
    :param host_vars: instance name → variables.
    :param links: ``group_vars``/``host_vars``/``hosts`` → a path (relative to the scenario
        directory) Molecule links into its inventory directory.
    :param hosts: an extra inventory (hosts Molecule does not make), as written.
    """

    group_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    host_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    hosts: Mapping[str, Any] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class Playbooks:
    """The scenario's playbooks, as absolute paths; None where the scenario has none.

    :param converge: always set (Molecule's default is ``converge.yml``, else the deprecated
        ``playbook.yml``); the reader refuses a scenario without it.
    """

    converge: Path
    prepare: Path | None = None
    side_effect: Path | None = None
    verify: Path | None = None
    cleanup: Path | None = None
    create: Path | None = None
    destroy: Path | None = None

    def named(self) -> dict[str, Path]:
        """Playbook name → path, for those the scenario has, in sequence order."""
        found = {name: getattr(self, name) for name in PLAYBOOKS}
        return {name: path for name, path in found.items() if path is not None}


@final
@dataclass(frozen=True, slots=True)
class MoleculeProvisioner:
    """``provisioner:`` (and the newer ``ansible:`` section it was merged with).

    :param config_options: ansible.cfg sections (``defaults``, ``ssh_connection`` …) → options.
    :param env: environment of ansible-playbook.
    :param options: ansible-playbook options (``{diff: true, skip-tags: x}`` → ``--diff …``).
    :param ansible_args: extra ansible-playbook arguments, as written.
    :param connection_options: variables Molecule adds to every host of its inventory.
    """

    playbooks: Playbooks
    name: str = "ansible"
    config_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    ansible_args: tuple[str, ...] = ()
    connection_options: Mapping[str, Any] = field(default_factory=dict)
    inventory: Inventory = Inventory()
    other: Mapping[str, Any] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class Verifier:
    """``verifier:``: who checks the converged instances.

    :param name: ``testinfra``, ``ansible`` (Molecule's default), ``goss``, ``inspec``.
    :param directory: the testinfra tests' directory (absolute; ``tests/`` by default).
    :param tests: the ``test_*.py`` files under it (and ``additional_files_or_dirs``), sorted.
    :param options: pytest options Molecule passes (``{v: true, sudo: true}``).
    :param env: environment of the verifier.
    """

    directory: Path
    name: str = "ansible"
    enabled: bool = True
    tests: tuple[Path, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    additional_files_or_dirs: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Dependency:
    """``dependency:``: what Molecule installs before the run.

    :param requirements: requirement files that ``galaxy`` would install, found on disk.
    """

    name: str = "galaxy"
    enabled: bool = True
    command: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    requirements: tuple[Path, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Role:
    """The role (or project) folder the scenario tests.

    :param directory: the folder that holds ``molecule/``.
    :param name: the folder's name: how ``roles:`` finds it through the parent directory.
    :param fqrn: ``namespace.role_name`` from ``meta/main.yml``, the name Molecule installs the
        role under (through ansible-compat); "" when meta/main.yml does not give both.
    :param is_role: the folder has ``tasks/main.yml`` or ``meta/main.yml``.
    :param scenarios: names of every scenario under ``molecule/``, sorted.
    """

    directory: Path
    name: str
    fqrn: str = ""
    is_role: bool = False
    scenarios: tuple[str, ...] = ()


@final
@dataclass(frozen=True, slots=True)
class Usage:
    """Something the scenario's playbooks or specs rely on that is worth knowing before a run.

    :param what: ``testinfra_hosts``, ``host.ansible``, ``env:MOLECULE_INVENTORY_FILE``,
        ``var:molecule_yml``, ``role:infranode_tests.hello_service`` …
    :param where: ``file:line`` of its first use.
    """

    what: str
    where: str


@final
@dataclass(frozen=True, slots=True)
class Scenario:
    """One Molecule scenario, read and checked.

    :param name: the scenario's name (its directory's, unless ``scenario.name`` says otherwise).
    :param directory: ``molecule/<name>`` (absolute).
    :param file: its molecule.yml.
    :param sources: every file merged into it, base config first.
    :param driver: ``driver.name`` (``docker``, ``podman``, ``delegated`` …).
    :param test_sequence: ``scenario.test_sequence``, or Molecule's default.
    :param where: ``file:line`` of each key (``platforms.0.image``, ``provisioner.env``).
    :param variables: the variables interpolated into molecule.yml, each once.
    :param uses: what the playbooks and specs rely on (see :class:`Usage`).
    :param other: top-level keys not modelled (``lint``, ``log``, ``prerun`` …), as written.
    """

    name: str
    directory: Path
    file: Path
    role: Role
    platforms: tuple[MoleculePlatform, ...]
    provisioner: MoleculeProvisioner
    verifier: Verifier
    dependency: Dependency = Dependency()
    driver: str = "docker"
    driver_options: Mapping[str, Any] = field(default_factory=dict)
    test_sequence: tuple[str, ...] = DEFAULT_TEST_SEQUENCE
    sources: tuple[Path, ...] = ()
    where: Mapping[str, str] = field(default_factory=dict)
    variables: tuple[Variable, ...] = ()
    uses: tuple[Usage, ...] = ()
    other: Mapping[str, Any] = field(default_factory=dict)

    def at(self, key: str) -> str:
        """``file:line`` of ``key``, else of its closest parent key, else the file."""
        probe = key
        while probe:
            if probe in self.where:
                return self.where[probe]
            probe = probe.rpartition(".")[0]
        return str(self.file)
