"""A Molecule scenario in the plugin's own terms: what infranode.yaml would say, and what the
scenario uses that the plugin does not do (yet), each with the reason. Pure.

Two layouts, chosen from the images:

- **nodes** (every platform runs the same image): one plugin platform, and each Molecule
  platform is a node of ``nodes:`` with its name (its hostname and inventory name), groups, env,
  capabilities and ports. ``--infra-platform`` then re-targets the whole scenario.
- **platforms** (the images differ: a role tried on several systems): each Molecule platform is
  a platform of its own in ``platform_definitions:`` and a node of ``nodes:``, both named after
  it, the node made on its own platform only (``platform:``). On those platforms the nodes are
  one span (``NodeLayout.span``): one network, one inventory, one Ansible run over it.
  ``--infra-platform`` re-targets this layout too: every node on each platform selected, with
  its name, groups and vars.

The translation never pretends: a key the plugin cannot honour is a :class:`Gap` of kind
``unsupported``; one honoured differently (``privileged: true`` runs with the least-privilege
systemd recipe) is a gap of kind ``changed``. Both are known before any node is made.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal
from typing import final

from pytest_infranode.errors import SettingsError
from pytest_infranode.molecule.environment import SESSION_VARIABLES
from pytest_infranode.molecule.interpolation import RUNTIME_VARIABLES
from pytest_infranode.molecule.interpolation import molecule_variables
from pytest_infranode.molecule.model import DEFAULT_TEST_SEQUENCE
from pytest_infranode.molecule.model import MoleculePlatform
from pytest_infranode.molecule.model import Scenario
from pytest_infranode.platforms import BUILTIN_PLATFORMS
from pytest_infranode.platforms import SYSTEMD_TMPFS
from pytest_infranode.platforms import Platform

Layout = Literal["nodes", "platforms"]
GapKind = Literal["unsupported", "changed"]

ANSIBLE_CFG = "infranode-ansible.cfg"
"""The ansible.cfg the import writes from ``config_options`` (next to infranode.yaml)."""
IDEMPOTENCE_NOTEST = "molecule-idempotence-notest"
NOTEST = "molecule-notest,notest"
"""Molecule's converge always skips these tags."""
SYSTEMD_COMMANDS = {
    "/sbin/init",
    "/usr/sbin/init",
    "/lib/systemd/systemd",
    "/usr/lib/systemd/systemd",
    "/bin/systemd",
    "/usr/bin/systemd",
}
_CGROUP_VOLUME = re.compile(r"/sys/fs/cgroup(/[^:]*)?:/sys/fs/cgroup(/[^:]*)?(:(rw|ro))?")
_NODE_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
_JINJA = re.compile(r"{{|{%")
_PORT = re.compile(
    r"(?:(?P<ip>[\d.]+|\[[0-9a-f:]+\]):)?(?:(?P<host>\d*):)?(?P<port>\d+)(?:/(?P<proto>tcp|udp|sctp))?"
)

IGNORED_PLATFORM_KEYS = {
    "exposed_ports": "",
    "labels": "",
    "keep_volumes": "",
    "purge_networks": "",
    "networks_cli_compatible": "",
    "container_default_behavior": "",
    "command_handling": "",
    "force_kill": "",
}
"""Keys that change nothing a node does here (ports are open between nodes anyway; labels,
volumes and networks are the plugin's own)."""
PLATFORM_KEY_REASONS = {
    "devices": "nodes get no host devices",
    "sysctls": "not translated: write them as the node's `sysctls:` in infranode.yaml",
    "ulimits": "nodes get the daemon's default ulimits",
    "security_opts": "the plugin chooses a node's security options itself (docs/systemd-nodes.md)",
    "dns_servers": "nodes use the daemon's DNS",
    "etc_hosts": "nodes of a platform find each other by name on their network; other names are not added",
    "memory": "nodes have no memory limit",
    "memory_swap": "nodes have no memory limit",
    "cpus": "nodes have no CPU limit",
    "shm_size": "nodes get Docker's default /dev/shm",
    "user": "a node's PID 1 runs as the image's user",
    "pid_mode": "nodes have a PID namespace of their own",
    "restart_policy": "a node is not restarted by the daemon",
    "restart_retries": "a node is not restarted by the daemon",
    "docker_host": "every node is on the one daemon of the session (--infra-docker-host)",
    "cacert_path": "TLS to the daemon is set with DOCKER_CERT_PATH / --infra-docker-host",
    "cert_path": "TLS to the daemon is set with DOCKER_CERT_PATH / --infra-docker-host",
    "key_path": "TLS to the daemon is set with DOCKER_CERT_PATH / --infra-docker-host",
    "tls_verify": "TLS to the daemon is set with DOCKER_TLS_VERIFY / --infra-docker-host",
    "links": "nodes of a platform find each other by name on their network",
    "mounts": "the plugin does not mount anything into nodes yet",
    "buildargs": "a platform's Dockerfile is built without build arguments",
    "cache_from": "a platform's Dockerfile is built without cache sources",
    "runtime": "nodes use the daemon's default OCI runtime",
    "platform": "nodes use the daemon's architecture",
    "stop_signal": "the plugin stops a node with its init's signal",
    "kill_signal": "the plugin stops a node with its init's signal",
    "tty": "the plugin decides whether a node has a terminal (systemd nodes do)",
    "pull": "images are pulled by --infra-pull (missing, always, never)",
    "force": "a platform's Dockerfile is built once; remove the image to build it again",
    "docker_networks": "nodes of a platform share one network the plugin makes",
}
PLUGIN_ENV = ("ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CONNECTION_PLUGINS", "ANSIBLE_CALLBACK_PLUGINS")
"""ansible-playbook's environment the plugin sets itself: a user's value would replace it and
turn off its connection or its idempotence check."""
CONNECTION_VARS = ("ansible_connection", "ansible_host", "ansible_docker_extra_args", "ansible_port")
TESTINFRA_CONNECTION_OPTIONS = (
    "connection",
    "hosts",
    "ansible-inventory",
    "ansible_inventory",
    "sudo",
    "sudo-user",
    "sudo_user",
    "ssh-config",
    "ssh_config",
    "ssh-identity-file",
    "ssh_identity_file",
    "force-ansible",
    "force_ansible",
)
STATIC_MOLECULE_VARS = (
    "MOLECULE_PROJECT_DIRECTORY",
    "MOLECULE_SCENARIO_DIRECTORY",
    "MOLECULE_SCENARIO_NAME",
    "MOLECULE_FILE",
    "MOLECULE_DRIVER_NAME",
    "MOLECULE_PROVISIONER_NAME",
    "MOLECULE_VERIFIER_NAME",
    "MOLECULE_VERIFIER_TEST_DIRECTORY",
    "MOLECULE_DEPENDENCY_NAME",
)
"""Molecule's variables that the import can give the converge (known before a run)."""
_ORDERED_ACTIONS = ("prepare", "converge", "idempotence", "side_effect", "verify")
# every action Molecule knows: its default test sequence and the commands outside it
_KNOWN_ACTIONS = {*DEFAULT_TEST_SEQUENCE, "check", "lint", "test"}


@final
@dataclass(frozen=True, slots=True)
class Gap:
    """Something the scenario uses that the plugin does not do, or does differently.

    :param subject: what it is (``platform instance: volumes``).
    :param where: ``file:line`` where the scenario uses it.
    :param reason: why it is not carried over, or how it differs.
    :param fix: what the user can do about it now ("" when nothing).
    :param kind: ``unsupported`` (not carried over) or ``changed`` (carried over differently).
    :param friction: the number of the friction of issue #19 it is (0: none of them).
    """

    subject: str
    where: str
    reason: str
    fix: str = ""
    kind: GapKind = "unsupported"
    friction: int = 0

    def __str__(self) -> str:
        text = f"{self.subject}: {self.reason}"
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return f"{self.where}: {text}"


@final
@dataclass(frozen=True, slots=True)
class Translation:
    """The plugin's configuration for one scenario.

    :param data: what infranode.yaml says (its keys in the order they are written).
    :param files: other files to write next to it: name → text (``infranode-ansible.cfg``).
    :param config_dir: where infranode.yaml goes; relative paths in ``data`` start there.
    :param tests: the testinfra specs' folder (and ``additional_files_or_dirs``) for pytest.
    :param pytest_options: pytest options from ``verifier.options``.
    :param renamed: Molecule name → node or platform name, for names that had to change.
    """

    scenario: Scenario
    layout: Layout
    config_dir: Path
    data: Mapping[str, Any]
    gaps: tuple[Gap, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    tests: tuple[Path, ...] = ()
    pytest_options: tuple[str, ...] = ()
    renamed: Mapping[str, str] = field(default_factory=dict)

    @property
    def unsupported(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if g.kind == "unsupported")

    @property
    def changed(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if g.kind == "changed")


# --- images to platforms ------------------------------------------------------------------------


def normalize_image(reference: str) -> str:
    """``docker.io/library/debian:bookworm`` → ``debian:bookworm``; ``:latest`` added. Pure."""
    ref = reference.strip()
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        ref = ref.removeprefix(prefix)
    ref = ref.removeprefix("library/")
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    return f"{name}:{tag}"


def builtin_for_image(reference: str, platforms: tuple[Platform, ...] = BUILTIN_PLATFORMS) -> Platform | None:
    """The built-in platform whose base image ``reference`` is (``debian:bookworm`` is
    ``debian-12``: the tag may be the release's code name). Pure."""
    wanted = normalize_image(reference)
    for platform in platforms:
        own = normalize_image(platform.image)
        if wanted == own:
            return platform
        if platform.bootstrap is not None:
            repo = own.rsplit(":", 1)[0]
            if wanted == f"{repo}:{platform.bootstrap.suite}":
                return platform
    return None


def guess_base(reference: str, platforms: tuple[Platform, ...] = BUILTIN_PLATFORMS) -> Platform | None:
    """The built-in platform an image is most likely made from, by the names in its reference
    (``geerlingguy/docker-debian12-ansible`` → ``debian-12``); the longest match wins. Pure."""
    squeezed = re.sub(r"[^a-z0-9]", "", reference.lower())
    best: tuple[int, Platform] | None = None
    for platform in platforms:
        names = {platform.name, *platform.aliases}
        if platform.bootstrap is not None:
            names.add(platform.bootstrap.suite)
        for name in names:
            token = re.sub(r"[^a-z0-9]", "", name)
            if len(token) > 4 and token in squeezed and (best is None or len(token) > best[0]):
                best = (len(token), platform)
    return best[1] if best else None


def guess_package_manager(reference: str) -> str:
    """apt, dnf, zypper, pacman or apk from the words of an image reference; "" when none. Pure."""
    text = reference.lower()
    for words, manager in (
        (("debian", "ubuntu", "mint", "kali"), "apt"),
        (("rocky", "alma", "centos", "fedora", "rhel", "redhat", "ubi", "amazon", "oracle"), "dnf"),
        (("suse",), "zypper"),
        (("arch",), "pacman"),
        (("alpine",), "apk"),
    ):
        if any(w in text for w in words):
            return manager
    return ""


def node_name(name: str) -> str:
    """A Molecule name as a node name (a hostname: lower-case letters, digits, '-'). Pure."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not text or not text[0].isalpha():
        text = "n-" + text
    return text[:31].rstrip("-")


def platform_name(name: str) -> str:
    """A Molecule name as a platform name (lower-case letters, digits, '.', '_', '-'). Pure."""
    text = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return (text or "platform")[:63]


def _image_name(reference: str) -> str:
    """A platform name made from an image reference (``docker-debian12-ansible``). Pure."""
    ref = normalize_image(reference)
    repo, _, tag = ref.rpartition(":")
    base = repo.rsplit("/", 1)[-1]
    return platform_name(base if tag == "latest" else f"{base}-{tag}")


def dict2args(options: Mapping[str, Any]) -> list[str]:
    """Molecule's options → command-line arguments: ``{diff: true, skip-tags: x}`` →
    ``--diff --skip-tags x``; one-letter keys get one dash; false is left out. Pure."""
    args: list[str] = []
    for key, value in sorted(options.items()):
        if value is False or value is None:
            continue
        dashes = "-" if len(key) == 1 or re.fullmatch(r"v+", key) else "--"  # -vvv, as Molecule
        args.append(f"{dashes}{key}".replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return args


def render_ansible_cfg(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """``config_options`` as ansible.cfg text, the way Molecule writes it. Pure."""
    lines = ["# Written by `infranode import molecule` from provisioner.config_options."]
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in options.items():
            lines.append(f"{key} = {_cfg_value(value)}")
    return "\n".join(lines) + "\n"


def _cfg_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


# --- the translation ----------------------------------------------------------------------------


def translate(
    scenario: Scenario,
    *,
    config_dir: Path | None = None,
    allow_privileged: bool = False,
    allow_outside_project: bool = False,
) -> Translation:
    """Turn ``scenario`` into the plugin's configuration, and list its gaps.

    :param config_dir: where infranode.yaml will be (default: the scenario's folder, where
        Molecule runs ansible-playbook too, so relative paths mean the same).
    :param allow_privileged: keep ``privileged: true`` instead of the least-privilege systemd
        recipe.
    :param allow_outside_project: write ``allow_outside_project: true`` when an inventory link
        names a folder outside infranode.yaml's (pytest's rootdir in the printed command).
    :raises SettingsError: a platform without an image (nothing to make its node from).
    """
    translator = _Translator(scenario, (config_dir or scenario.directory).resolve(), allow_privileged)
    translator.allow_outside_project = allow_outside_project
    return translator.run()


class _Translator:
    def __init__(self, scenario: Scenario, config_dir: Path, allow_privileged: bool) -> None:
        self.s = scenario
        self.config_dir = config_dir
        self.allow_privileged = allow_privileged
        self.allow_outside_project = False
        self.outside_project = False
        """Whether what the file names leaves its folder (then ``allow_outside_project: true``)."""
        self.gaps: list[Gap] = []
        self.files: dict[str, str] = {}
        self.renamed: dict[str, str] = {}
        self._shared: dict[tuple[str, str, str, str], tuple[int, list[str]]] = {}

    # helpers
    def gap(
        self,
        subject: str,
        where: str,
        reason: str,
        fix: str = "",
        kind: GapKind = "unsupported",
        friction: int = 0,
    ) -> None:
        self.gaps.append(Gap(subject, where, reason, fix, kind, friction))

    def pgap(
        self,
        platform: MoleculePlatform,
        what: str,
        where: str,
        reason: str,
        fix: str = "",
        kind: GapKind = "unsupported",
        friction: int = 0,
    ) -> None:
        """A gap of one platform; the same gap of several platforms is one entry naming them all."""
        key = (what, reason, fix, kind)
        if key in self._shared:
            index, names = self._shared[key]
            names.append(platform.name)
            old = self.gaps[index]
            self.gaps[index] = Gap(
                f"platforms {', '.join(names)}: {what}", old.where, reason, fix, kind, friction
            )
            return
        self._shared[key] = (len(self.gaps), [platform.name])
        self.gap(f"platform {platform.name}: {what}", where, reason, fix, kind, friction)

    def rel(self, path: Path | str) -> str:
        return os.path.relpath(Path(path).resolve(), self.config_dir)

    def at(self, key: str) -> str:
        return self.s.at(key)

    def uses(self, prefix: str) -> list[tuple[str, str]]:
        return [(u.what.removeprefix(prefix), u.where) for u in self.s.uses if u.what.startswith(prefix)]

    def run(self) -> Translation:
        s = self.s
        if s.driver not in ("docker", "podman"):
            self.gap(
                f"driver {s.driver}",
                self.at("driver.name"),
                f"Molecule's {s.driver!r} driver makes instances its own way (a create.yml playbook, a "
                "cloud, a VM); here every platform is a Docker (or Podman) container the plugin makes from "
                "its `image:`",
                "check that each platform's image is what the role should run on",
            )
        for platform in s.platforms:
            if not platform.image:
                raise SettingsError(
                    f"platform {platform.name!r} has no image: there is nothing to make its node from",
                    where=self.at(platform.key),
                    fix="give it `image: debian:12` (any image reference)",
                )
        images = {(normalize_image(p.image), p.dockerfile) for p in s.platforms}
        layout: Layout = "nodes" if len(images) == 1 else "platforms"
        data: dict[str, Any] = {}
        if layout == "nodes":
            platform_names, nodes, definitions, inventory_names = self.nodes_layout()
        else:
            platform_names, nodes, definitions, inventory_names = self.platforms_layout()
        data["platforms"] = platform_names
        if "idempotence" in s.test_sequence:
            data["idempotence"] = True
        data["provisioner"] = self.provisioner(inventory_names)
        if nodes:
            data["nodes"] = nodes
        if definitions:
            data["platform_definitions"] = definitions
        if self.outside_project:
            data["allow_outside_project"] = True
        self.sequence()
        tests, options = self.verifier()
        self.variables()
        if self.config_dir != s.directory.resolve():
            self.gap(
                "infranode.yaml's folder",
                str(self.config_dir),
                "ansible-playbook runs in the folder of infranode.yaml, Molecule runs it in the scenario's "
                "folder: relative paths in `env:` and `config_options` now start from another folder",
                "write infranode.yaml in the scenario's folder (the default), or check those paths",
                kind="changed",
            )
        return Translation(
            scenario=s,
            layout=layout,
            config_dir=self.config_dir,
            data=data,
            gaps=tuple(self.gaps),
            files=dict(self.files),
            tests=tests,
            pytest_options=options,
            renamed=dict(self.renamed),
        )

    # platforms and nodes
    def nodes_layout(self) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, str]]:
        """One plugin platform; each Molecule platform a node."""
        s = self.s
        first = s.platforms[0]
        builtin = builtin_for_image(first.image)
        name = builtin.name if builtin is not None and not first.dockerfile else _image_name(first.image)
        body, base = self.definition(first, builtin)
        for other in s.platforms[1:]:  # the platform's settings are every node's: their gaps too
            self.definition(other, builtin)
        nodes: dict[str, Any] = {}
        names: dict[str, str] = {}
        for platform in s.platforms:
            short = self.unique(node_name(platform.name), names.values())
            names[platform.name] = short
            if short != platform.name:
                self.renamed[platform.name] = short
                self.pgap(
                    platform,
                    "name",
                    self.at(f"{platform.key}.name"),
                    f"the node is called {short!r}: a node's name is its hostname (lower-case letters, "
                    "digits, '-', 31 at most), so the inventory host is renamed too",
                    f"rename the platform to {short!r} in molecule.yml (and where specs and vars name it)",
                    kind="changed",
                    friction=6,
                )
            nodes[short] = self.node_body(platform, base, short)
            if platform is not first:
                self.same_as_first(platform, first)
        self.networks_nodes()
        definitions = {name: body} if body else {}
        return [name], nodes, definitions, names

    def node_body(self, platform: MoleculePlatform, base: Platform | None, short: str) -> dict[str, Any]:
        """The ``nodes:`` entry of a Molecule platform: groups, env, capabilities, ports, hostname."""
        node: dict[str, Any] = {}
        if platform.groups:
            node["groups"] = list(platform.groups)
        if platform.env:
            node["env"] = dict(platform.env)
        caps = [c.upper().removeprefix("CAP_") for c in platform.capabilities]
        caps = [c for c in caps if c not in (base.cap_add if base else ())]
        if caps:
            node["capabilities"] = caps
        ports = self.ports(platform, allowed=True)
        if ports:
            node["ports"] = ports
        self.common_platform_keys(platform)
        if platform.hostname and platform.hostname != short:
            node["hostname"] = platform.hostname  # its inventory name stays `short`
        return node

    def platforms_layout(self) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, str]]:
        """Each Molecule platform a plugin platform of its own, and a node of ``nodes:`` with
        its name, made on that platform only (``platform:``): a platform ``--infra-platform``
        selects instead gets every node, as the nodes layout does."""
        definitions: dict[str, Any] = {}
        nodes: dict[str, Any] = {}
        names: dict[str, str] = {}
        for platform in self.s.platforms:
            short = self.unique(node_name(platform.name), names.values())
            names[platform.name] = short
            if short != platform.name:
                self.renamed[platform.name] = short
                self.pgap(
                    platform,
                    "name",
                    self.at(f"{platform.key}.name"),
                    f"the node (and its platform) is called {short!r}: a node's name is its hostname "
                    "(lower-case letters, digits, '-', 31 at most), so the inventory host is renamed too",
                    f"rename the platform to {short!r} in molecule.yml (and where specs and vars name it)",
                    kind="changed",
                    friction=6,
                )
            builtin = builtin_for_image(platform.image)
            body, base = self.definition(platform, builtin, always=True)
            definitions[short] = body
            node = self.node_body(platform, base, short)
            nodes[short] = {**node, "platform": short}
        self.networks_nodes()  # the nodes of the scenario share one network, as in the nodes layout
        return list(names.values()), nodes, definitions, names

    def unique(self, name: str, taken: Any) -> str:
        taken = set(taken)
        if name not in taken:
            return name
        number = 2
        while f"{name[:28]}-{number}" in taken:
            number += 1
        return f"{name[:28]}-{number}"

    def definition(
        self, platform: MoleculePlatform, builtin: Platform | None, *, always: bool = False
    ) -> tuple[dict[str, Any], Platform | None]:
        """The ``platform_definitions:`` body a platform needs ({} when a built-in does), and
        the built-in it starts from."""
        body: dict[str, Any] = {}
        dockerfile = self.plain_dockerfile(platform)
        base = builtin or guess_base(platform.image)
        if base is not None and (always or builtin is None or dockerfile):
            body["base"] = base.name
        if builtin is None or dockerfile or always:
            body["image"] = platform.image
        if base is None:
            manager = guess_package_manager(platform.image)
            body["package_manager"] = manager or "apt"
            if not manager:
                self.pgap(
                    platform,
                    "image",
                    self.at(f"{platform.key}.image"),
                    f"cannot tell which system {platform.image!r} is: assumed to use apt, with systemd",
                    "set `base:` (a known platform) or `package_manager:` and `init:` in "
                    "platform_definitions",
                    kind="changed",
                )
        if dockerfile:
            body["image"] = f"molecule_local/{normalize_image(platform.image)}"
            body["dockerfile"] = self.rel(dockerfile)
        elif not platform.pre_build_image and not platform.dockerfile:
            self.pgap(
                platform,
                "pre_build_image: false",
                self.at(f"{platform.key}.pre_build_image"),
                "Molecule builds its default Dockerfile on the image (python3, sudo, bash, iproute2, "
                "python3-apt, aptitude, rsync); here the prepared image adds python3, sudo, iproute2, "
                "procps and systemd",
                "add what the role needs to `packages:` of the platform in platform_definitions",
                kind="changed",
            )
        self.init(platform, body)
        tmpfs = self.tmpfs(platform)
        if tmpfs is not None:
            body["tmpfs"] = tmpfs
        if platform.privileged:
            if self.allow_privileged:
                body["privileged"] = True
            else:
                self.pgap(
                    platform,
                    "privileged: true",
                    self.at(f"{platform.key}.privileged"),
                    "the node runs with the plugin's least-privilege systemd recipe instead (CAP_SYS_ADMIN, "
                    "a cgroup namespace of its own, writable only in its own subtree; no devices, no "
                    "other capabilities), which boots systemd and runs its services",
                    "if the role needs more (kernel modules, devices, Docker in the node), run the import "
                    "again with --allow-privileged",
                    kind="changed",
                )
        return body, base

    def plain_dockerfile(self, platform: MoleculePlatform) -> str:
        """The platform's Dockerfile when the plugin can build it ("" for a Jinja2 template)."""
        if not platform.dockerfile:
            return ""
        path = Path(platform.dockerfile)
        if not _JINJA.search(path.read_text(encoding="utf-8", errors="replace")):
            return str(path)
        self.pgap(
            platform,
            "dockerfile",
            self.at(f"{platform.key}.dockerfile"),
            f"{path.name} is a Jinja2 template (Molecule renders it with the platform as `item`); the "
            "plugin builds a plain Dockerfile, so the image is used as it is",
            "render it once into a plain Dockerfile and name it in `platform_definitions` "
            f"(`dockerfile: {path.with_suffix('').name}`)",
        )
        return ""

    def init(self, platform: MoleculePlatform, body: dict[str, Any]) -> None:
        command = platform.command.strip()
        if not platform.override_command:
            if _systemd_recipe(platform):
                return  # the image's own command is its init: the plugin's systemd recipe boots it
            body["init"] = "none"
            body["command"] = []
            return
        if not command:
            self.pgap(
                platform,
                "command",
                self.at(platform.key),
                "Molecule replaces the image's command with a sleep loop (no init); here the node boots "
                "systemd as PID 1, like a real machine",
                kind="changed",
            )
            return
        if shlex.split(command)[0] in SYSTEMD_COMMANDS:
            return  # the plugin's systemd recipe
        body["init"] = "none"
        body["command"] = shlex.split(command)

    def tmpfs(self, platform: MoleculePlatform) -> dict[str, str] | None:
        extra: dict[str, str] = {}
        for entry in platform.tmpfs:
            path, _, options = entry.partition(":")
            if path not in SYSTEMD_TMPFS:
                extra[path] = options
        if not extra:
            return None
        return {**SYSTEMD_TMPFS, **extra}

    def common_platform_keys(self, platform: MoleculePlatform) -> None:
        key = platform.key
        for volume in platform.volumes:
            if _CGROUP_VOLUME.fullmatch(volume):
                continue  # the plugin's systemd recipe gives the node its cgroup tree
            self.pgap(
                platform,
                "volumes",
                self.at(f"{key}.volumes"),
                f"{volume!r} is not mounted: the plugin does not mount volumes into nodes (a bind mount also "
                "names a folder of the daemon's machine, not of this one)",
                "copy what the node needs in with the prepare playbook",
            )
        if platform.children:
            self.pgap(
                platform,
                "children",
                self.at(f"{key}.children"),
                "the generated inventory has no child groups",
                "list the child groups in `groups:` of the platform",
            )
        for name in platform.other:
            if name in IGNORED_PLATFORM_KEYS:
                continue
            reason = PLATFORM_KEY_REASONS.get(name, "the plugin has no equivalent")
            self.pgap(platform, name, self.at(f"{key}.{name}"), f"not carried over: {reason}")
        if platform.network_mode and platform.network_mode not in ("bridge", "default"):
            self.pgap(
                platform,
                "network_mode",
                self.at(f"{key}.network_mode"),
                f"{platform.network_mode!r} is not carried over: nodes are on the plugin's network",
            )

    def same_as_first(self, platform: MoleculePlatform, first: MoleculePlatform) -> None:
        """Per-platform settings that become the one plugin platform's: the first one's win."""
        for attr, label in (
            ("command", "command"),
            ("override_command", "override_command"),
            ("tmpfs", "tmpfs"),
            ("privileged", "privileged"),
        ):
            if getattr(platform, attr) != getattr(first, attr):
                self.pgap(
                    platform,
                    "{label}",
                    self.at(f"{platform.key}.{label}"),
                    f"every node of a platform shares its {label}; {first.name}'s is used",
                    "give every platform the same value",
                )

    def ports(self, platform: MoleculePlatform, *, allowed: bool) -> list[int]:
        found: list[int] = []
        for entry in platform.published_ports:
            where = self.at(f"{platform.key}.published_ports")
            match = _PORT.fullmatch(entry.strip())
            if not allowed:
                self.pgap(
                    platform,
                    "published_ports",
                    where,
                    "ports are published for named nodes only, and with different images there are none",
                    "use one image for every platform",
                )
                return []
            if match is None:
                self.pgap(
                    platform,
                    "published_ports",
                    where,
                    f"{entry!r} (a range?) is not carried over: ports are published one by one",
                )
                continue
            if (match.group("proto") or "tcp") != "tcp":
                self.pgap(
                    platform, "published_ports", where, f"{entry!r} is not published: only TCP ports are"
                )
                continue
            port = int(match.group("port"))
            found.append(port)
            if match.group("host") or match.group("ip"):
                self.pgap(
                    platform,
                    "published_ports",
                    where,
                    f"{entry!r}: container port {port} is published on a free port the daemon picks, not on "
                    "the one given",
                    f"ask the node for it in a spec: `infra_node.port({port})`",
                    kind="changed",
                )
        return found

    def networks_nodes(self) -> None:
        sets = {tuple(sorted(n.name for n in p.networks)) for p in self.s.platforms}
        if len(sets) > 1:
            first = next(p for p in self.s.platforms if p.networks)
            self.gap(
                "networks",
                self.at(f"{first.key}.networks"),
                "the platforms are on different networks in Molecule; here every node of a platform is on "
                "one network the plugin makes, and reaches every other",
            )
        for platform in self.s.platforms:
            for index, net in enumerate(platform.networks):
                if net.aliases or net.ipv4_address:
                    self.pgap(
                        platform,
                        "networks",
                        self.at(f"{platform.key}.networks.{index}"),
                        "aliases and fixed addresses are not carried over: a node answers to its name",
                    )

    # the provisioner
    def provisioner(self, names: dict[str, str]) -> dict[str, Any]:
        s = self.s
        prov = s.provisioner
        body: dict[str, Any] = {"name": "ansible", "playbook": self.rel(prov.playbooks.converge)}
        if prov.playbooks.prepare is not None:
            body["prepare"] = self.rel(prov.playbooks.prepare)
        if prov.playbooks.side_effect is not None and "side_effect" in s.test_sequence:
            body["side_effect"] = self.rel(prov.playbooks.side_effect)
        if self.runs_verify_playbook():
            assert prov.playbooks.verify is not None
            body["verify"] = self.rel(prov.playbooks.verify)
        env = self.env()
        if s.role.is_role and "ANSIBLE_ROLES_PATH" not in env:
            body["roles_path"] = self.rel(s.role.directory.parent)
        if prov.config_options:
            self.files[ANSIBLE_CFG] = render_ansible_cfg(prov.config_options)
            body["config"] = ANSIBLE_CFG
        if env:
            body["env"] = env
        options = {"skip-tags": NOTEST, **prov.options}
        body["args"] = [*dict2args(options), *prov.ansible_args]
        if "idempotence" in s.test_sequence:
            body["idempotence_skip_tags"] = [IDEMPOTENCE_NOTEST]
        groups: dict[str, list[str]] = {}
        for platform in s.platforms:
            for group in platform.groups:
                groups.setdefault(group, []).append(names[platform.name])
        if groups:
            body["groups"] = groups
        group_vars = {g: dict(v) for g, v in prov.inventory.group_vars.items()}
        self.molecule_vars(group_vars)
        if group_vars:
            body["group_vars"] = group_vars
        host_vars: dict[str, dict[str, Any]] = {}
        connection = {k: v for k, v in prov.connection_options.items() if k not in CONNECTION_VARS}
        dropped = sorted(set(prov.connection_options) & set(CONNECTION_VARS))
        if dropped:
            self.gap(
                "provisioner.connection_options",
                self.at("provisioner.connection_options"),
                f"{', '.join(dropped)} not carried over: the plugin reaches nodes through its own connection "
                "plugin",
                kind="changed",
            )
        for platform in s.platforms:
            own = {**connection, **prov.inventory.host_vars.get(platform.name, {})}
            if own:
                host_vars[names[platform.name]] = own
        for host, variables in prov.inventory.host_vars.items():
            if host not in names:
                host_vars[host] = dict(variables)
        if host_vars:
            body["host_vars"] = host_vars
        links: dict[str, str] = {}
        for kind, target in prov.inventory.links.items():
            if kind == "hosts":
                self.gap(
                    f"provisioner.inventory.links.{kind}",
                    self.at(f"provisioner.inventory.links.{kind}"),
                    f"Molecule links {target!r} into its inventory folder; the plugin's inventory holds "
                    "the nodes it makes, no other hosts file",
                    "write those hosts' variables into `host_vars:`",
                )
                continue
            folder = (s.directory / target).resolve()  # Molecule's are relative to the scenario
            if self.config_dir not in folder.parents:
                where = self.at(f"provisioner.inventory.links.{kind}")
                if not self.allow_outside_project:
                    self.gap(
                        f"provisioner.inventory.links.{kind}",
                        where,
                        f"{target!r} is outside the scenario's folder, the project (pytest's rootdir) whose "
                        "files the configuration may name: not linked",
                        f"move the folder into {self.rel_to_role(s.directory)}/, or run the import again "
                        "with --allow-outside-project",
                    )
                    continue
                self.outside_project = True
                self.gap(
                    f"provisioner.inventory.links.{kind}",
                    where,
                    f"{target!r} is outside the scenario's folder: `allow_outside_project: true` is written "
                    "so that the session may read it (and any file the configuration names outside)",
                    kind="changed",
                )
            links[kind] = self.rel(folder)
        if links:
            body["inventory_links"] = links
        if prov.inventory.hosts:
            self.gap(
                "provisioner.inventory.hosts",
                self.at("provisioner.inventory.hosts"),
                "hosts that Molecule does not make are not added to the generated inventory",
            )
        for key in prov.other:
            if key != "log":  # Molecule's own output: nothing to carry over
                self.gap(
                    f"provisioner.{key}",
                    self.at(f"provisioner.{key}"),
                    "not carried over: the plugin has no equivalent",
                )
        self.playbooks()
        self.role_references()
        return body

    def rel_to_role(self, path: Path) -> str:
        return os.path.relpath(path, self.s.role.directory)

    def env(self) -> dict[str, str]:
        s = self.s
        env: dict[str, str] = {}
        for name, value in s.provisioner.env.items():
            if name in PLUGIN_ENV:
                self.gap(
                    f"provisioner.env.{name}",
                    self.at(f"provisioner.env.{name}"),
                    "not carried over: the plugin sets it itself (its connection and its idempotence check "
                    "need it)",
                    "enable your callbacks in `config_options` instead",
                )
                continue
            env[name] = self.relative_paths(value)
        known = molecule_variables(
            role_dir=s.role.directory,
            scenario_dir=s.directory,
            scenario_name=s.name,
            molecule_file=s.file,
            driver=s.driver,
        )
        known.update(
            {
                "MOLECULE_VERIFIER_NAME": s.verifier.name,
                "MOLECULE_VERIFIER_TEST_DIRECTORY": str(s.verifier.directory),
                "MOLECULE_DEPENDENCY_NAME": s.dependency.name,
            }
        )
        written: list[tuple[str, str]] = []
        for name, where in self.uses("env:"):
            if _in_spec(where):
                continue  # what the specs need is the verifier's part
            if name in known and name not in env:
                env[name] = known[name]
                if known[name].startswith("/"):
                    written.append((name, where))
            elif name in RUNTIME_VARIABLES and name not in SESSION_VARIABLES:
                self.gap(
                    f"{name} in a playbook",
                    where,
                    "exists only while Molecule runs; the plugin does not set it",
                    friction=3,
                )
        if written:
            self.gap(
                ", ".join(n for n, _ in written),
                written[0][1],
                "written into `env:` as absolute paths of this checkout (the plugin sets them too, "
                "from where infranode.yaml is, when it sits next to molecule.yml)",
                "run the import again when the role moves",
                kind="changed",
                friction=3,
            )
        return env

    def relative_paths(self, value: str) -> str:
        """Paths inside the role that interpolation made absolute, relative to infranode.yaml's
        folder (ansible-playbook runs there) again, so the file holds no path of this checkout."""
        for root in sorted({self.s.directory, self.s.role.directory}, key=lambda p: -len(str(p))):
            text = str(root)
            if text in value:
                value = re.sub(
                    re.escape(text) + r"(?=/|$|" + re.escape(os.pathsep) + ")", self.rel(root), value
                )
        return value

    def molecule_vars(self, group_vars: dict[str, dict[str, Any]]) -> None:
        """Molecule's inventory variables that the playbooks use, in group ``all``."""
        s = self.s
        wanted = dict(self.uses("var:"))
        given: dict[str, Any] = {}
        if "molecule_file" in wanted or "molecule_yml" in wanted:
            given["molecule_file"] = str(s.file)
        if "molecule_yml" in wanted:
            given["molecule_yml"] = "{{ lookup('file', molecule_file) | from_yaml }}"
        if "molecule_scenario_directory" in wanted:
            given["molecule_scenario_directory"] = str(s.directory)
        if "molecule_no_log" in wanted:
            given["molecule_no_log"] = False
        for name in ("molecule_ephemeral_directory", "molecule_instance_config"):
            if name in wanted:
                self.gap(
                    f"{name} in a playbook",
                    wanted[name],
                    "exists only while Molecule runs; the plugin does not set it",
                    friction=3,
                )
        if given:
            group_vars["all"] = {**given, **group_vars.get("all", {})}
            self.gap(
                ", ".join(sorted(given)),
                next(wanted[n] for n in wanted if n in given),
                "Molecule's inventory variables are written into group_vars.all, paths absolute to this "
                "checkout (molecule_yml reads molecule.yml itself, not Molecule's merged copy)",
                "run the import again when the role moves",
                kind="changed",
                friction=3,
            )

    def playbooks(self) -> None:
        s = self.s
        books = s.provisioner.playbooks
        if books.cleanup is not None:
            self.gap(
                "cleanup playbook",
                self.where_of_playbook("cleanup"),
                f"{books.cleanup.name} is not run: a node goes with its container",
                "do what must happen before a node goes in a `pytest_infranode_before_remove` hook",
            )
        for name in ("create", "destroy"):
            if getattr(books, name) is not None:
                self.gap(
                    f"{name} playbook",
                    self.where_of_playbook(name),
                    f"{getattr(books, name).name} is not run: the plugin makes and removes the nodes itself",
                )

    def where_of_playbook(self, name: str) -> str:
        for key in (f"provisioner.playbooks.{name}", f"ansible.playbooks.{name}"):
            if key in self.s.where:
                return self.s.where[key]
        path = getattr(self.s.provisioner.playbooks, name)
        return f"{path}:1"

    def role_references(self) -> None:
        role = self.s.role
        for name, where in self.uses("role:"):
            if role.fqrn and name == role.fqrn and name != role.name:
                self.gap(
                    f"role {name}",
                    where,
                    "Molecule installs the role under its Galaxy name (through ansible-compat); here roles "
                    f"are found by folder name in roles_path, so `{name}` is not found",
                    f"name it `{role.name}` in the playbook, or link it: `mkdir -p "
                    f"{self.rel_to_role(self.s.directory / 'roles')} && ln -s ../../.. "
                    f"{self.rel_to_role(self.s.directory / 'roles' / name)}`",
                )

    # the test sequence and the verifier
    def sequence(self) -> None:
        s = self.s
        where = self.at("scenario.test_sequence") if "scenario.test_sequence" in s.where else str(s.file)
        seen = [a for a in s.test_sequence if a in _ORDERED_ACTIONS]
        if seen != sorted(seen, key=_ORDERED_ACTIONS.index):
            self.gap(
                "scenario.test_sequence",
                where,
                "the order is the plugin's: prepare, converge, idempotence, side effect, then the specs",
                kind="changed",
            )
        if "converge" not in s.test_sequence:
            self.gap(
                "scenario.test_sequence",
                where,
                "has no converge, but every node is converged here",
                kind="changed",
            )
        if "check" in s.test_sequence:
            self.gap("check", where, "ansible-playbook --check is not run")
        for action in s.test_sequence:
            if action not in _KNOWN_ACTIONS:
                self.gap(f"action {action}", where, "not one of Molecule's own actions: not run")
        dep = s.dependency
        if "dependency" in s.test_sequence and dep.enabled:
            if dep.name == "shell" and dep.command:
                self.gap(
                    "dependency",
                    self.at("dependency"),
                    f"`{dep.command}` is not run",
                    "run it before pytest",
                )
            for path in dep.requirements:
                self.gap(
                    "dependency",
                    self.at("dependency") if "dependency" in s.where else f"{path}:1",
                    f"the roles and collections of {path.name} are not installed",
                    f"run `ansible-galaxy install -r {self.rel_to_role(path)}` "
                    f"(and `ansible-galaxy collection install -r {self.rel_to_role(path)}`) before pytest",
                )

    def runs_verify_playbook(self) -> bool:
        """The Ansible verifier with a verify playbook in the test sequence: the playbook is
        the ansible provisioner's ``verify:``, collected by pytest as a test per platform."""
        s = self.s
        return (
            s.provisioner.playbooks.verify is not None
            and s.verifier.name == "ansible"
            and s.verifier.enabled
            and "verify" in s.test_sequence
        )

    def verifier(self) -> tuple[tuple[Path, ...], tuple[str, ...]]:
        s = self.s
        v = s.verifier
        if v.name in ("goss", "inspec"):
            self.gap(
                f"verifier {v.name}", self.at("verifier.name"), "only testinfra specs run as pytest tests"
            )
            return (), ()
        if self.runs_verify_playbook():
            assert s.provisioner.playbooks.verify is not None
            return (s.provisioner.playbooks.verify,), ()
        if v.name != "testinfra" or not v.enabled:
            return (), ()
        if not v.tests:
            self.gap(
                "verifier testinfra",
                self.at("verifier"),
                f"no test_*.py under {self.rel_to_role(v.directory)}: pytest will find no specs",
                kind="changed",
            )
        options: list[str] = []
        for name, value in v.options.items():
            if name in TESTINFRA_CONNECTION_OPTIONS:
                self.gap(
                    f"verifier.options.{name}",
                    self.at(f"verifier.options.{name}"),
                    "not carried over: the `host` fixture is the plugin's, bound to infranode.yaml's nodes",
                )
                continue
            if name == "p" and value == "no:cacheprovider":
                continue
            options += dict2args({name: value})
        if v.env and self.config_dir != s.directory.resolve():
            self.gap(
                "verifier.env",
                self.at("verifier.env"),
                "the specs get these variables when infranode.yaml is next to molecule.yml (the session "
                "reads them there, as Molecule does), not elsewhere",
                "write infranode.yaml in the scenario's folder (the default), or set them in the "
                "environment of pytest",
                friction=3,
            )
        for what, where in ((u.what, u.where) for u in s.uses):
            # the specs' own host selection, host.ansible and MOLECULE_* work in both layouts: the
            # nodes of one platform, or of the span of the scenario's own platforms, are one inventory
            if what.startswith("env:MOLECULE_") and _in_spec(where):
                name = what.removeprefix("env:")
                if name not in SESSION_VARIABLES:
                    self.gap(
                        f"{name} in a spec",
                        where,
                        "Molecule sets it, the plugin does not"
                        + (": collection fails with KeyError" if "environ[" in _line_text(where) else ""),
                        friction=3,
                    )
        return (v.directory, *(Path(p) for p in v.tests if v.directory not in Path(p).parents)), tuple(
            options
        )

    def variables(self) -> None:
        # verifier.env is read again by the session, which knows the runtime variables
        session_reads = (
            {self.at(f"verifier.env.{k}") for k in self.s.verifier.env}
            if self.config_dir == self.s.directory.resolve()
            else set()
        )
        for variable in self.s.variables:
            if variable.kind == "runtime" and variable.where in session_reads:
                continue
            if variable.kind == "runtime":
                self.gap(
                    f"${{{variable.name}}}",
                    variable.where,
                    "exists only while Molecule runs: kept as written",
                    friction=3,
                )
            elif variable.kind in ("environment", "default"):
                self.gap(
                    f"${{{variable.name}}}",
                    variable.where,
                    f"written with its value at import time ({variable.value!r}"
                    + (", its default" if variable.kind == "default" else "")
                    + "): infranode.yaml does not read environment variables",
                    "run the import again with the variable set, or edit infranode.yaml",
                    kind="changed",
                )
            elif variable.kind == "unset":
                self.gap(
                    f"${{{variable.name}}}",
                    variable.where,
                    "not set, and no default: replaced by an empty string, as Molecule does",
                    f"set {variable.name} and run the import again",
                    kind="changed",
                )


def _systemd_recipe(platform: MoleculePlatform) -> bool:
    """Whether a platform is set up the way Molecule users boot systemd in Docker."""
    return (
        platform.privileged
        or platform.cgroupns == "host"
        or any(_CGROUP_VOLUME.fullmatch(v) for v in platform.volumes)
        or platform.command.strip().split(" ")[0] in SYSTEMD_COMMANDS
    )


def _in_spec(where: str) -> bool:
    return where.rpartition(":")[0].endswith(".py")


def _line_text(where: str) -> str:
    path, _, line = where.rpartition(":")
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[int(line) - 1]
    except (OSError, ValueError, IndexError):
        return ""
