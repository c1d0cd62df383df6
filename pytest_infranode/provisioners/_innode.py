"""What the provisioners that run *inside* the node share: finding or installing their tool."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_infranode.errors import ConvergeError
from pytest_infranode.platforms.package_managers import PACKAGE_MANAGERS
from pytest_infranode.provisioners._common import in_node

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.provisioners.base import OutputSink


def install_command(manager: str, packages: Iterable[str]) -> str | None:
    """The command that installs ``packages`` in a node whose platform uses ``manager``, made
    from that manager's one install command (``platforms/package_managers.py``); None for a
    manager infranode does not know. Pure."""
    known = PACKAGE_MANAGERS.get(manager)
    return known.node_install(packages) if known is not None else None


def find_in_node(node: Node, candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` (names or absolute paths) the node has, as a path."""
    for tool in candidates:
        found = node.run_argv(["/bin/sh", "-c", f"command -v {shlex.quote(tool)}"])
        if found.exit_status == 0 and found.stdout.strip():
            return found.stdout.decode().strip().splitlines()[0]
    return None


def ensure_in_node(
    node: Node,
    output: OutputSink,
    *,
    provisioner: str,
    tools: Sequence[str],
    packages: Sequence[Sequence[str]],
    install: bool,
    fix: str,
) -> str:
    """The path of the tool in the node, installed from the platform's packages if missing.

    ``packages`` are alternatives tried in order (``[["puppet-agent"], ["puppet"]]``).

    :raises ConvergeError: naming the tool, the node and what was tried.
    """
    found = find_in_node(node, tools)
    if found:
        return found
    manager = node.platform.package_manager
    tried: list[str] = []
    if install and manager in PACKAGE_MANAGERS:
        for names in packages:
            command = install_command(manager, names) or ""
            tried.append(command)
            if in_node(node, ["/bin/sh", "-c", command], output) == 0:
                found = find_in_node(node, tools)
                if found:
                    return found
    what = f"the {provisioner} provisioner needs `{tools[0]}` in the node, and it is not there"
    if tried:
        what += f"; the platform's packages do not provide it (tried: {' ; '.join(tried)})"
    elif not install:
        what += " (install: never)"
    else:
        what += f" and {node.platform.name} has no package manager we know ({manager})"
    raise ConvergeError(what, where=node.where, fix=fix)


#: What makes a Python virtual environment on each package manager's platforms.
VENV_PACKAGES = {
    "apt": ("python3-venv",),
    "dnf": ("python3",),
    "zypper": ("python3",),
    "pacman": ("python",),
    "apk": ("python3",),
}
#: The runner's pip settings a pip run in the node inherits (PIP_CERT's file is copied in).
PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")
PIP_CA_IN_NODE = "/var/lib/infranode/pip/ca.pem"


def pip_env(node: Node, environ: dict[str, str]) -> dict[str, str]:
    """The pip settings for a pip run in ``node``: the runner's index and, when ``PIP_CERT`` names
    a file (a CA bundle of a TLS-inspecting proxy or a private index), that file, copied in."""
    env = {name: environ[name] for name in PIP_ENV if environ.get(name)}
    # Without PIP_CERT, the CA bundle the runner itself trusts (it may include a TLS-inspecting
    # proxy's CA that the node's own bundle lacks).
    cert = next(
        (environ[n] for n in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if environ.get(n)), None
    )
    if cert and Path(cert).is_file():
        node.put_files(
            str(Path(PIP_CA_IN_NODE).parent), {Path(PIP_CA_IN_NODE).name: (Path(cert).read_bytes(), 0o644)}
        )
        env["PIP_CERT"] = PIP_CA_IN_NODE
    return env


def venv_script(venv: str, manager: str, steps: Sequence[str]) -> str:
    """A shell script that makes the virtual environment ``venv`` with the platform's Python
    (installing what ``python3 -m venv`` needs if missing), then runs ``steps``. Pure."""
    install = install_command(manager, VENV_PACKAGES.get(manager, ("python3",))) or "false"
    quoted = shlex.quote(venv)
    return "\n".join(
        [
            "set -e",
            f"python3 -c 'import ensurepip, venv' 2>/dev/null || {{ {install}; }}",
            f"[ -x {quoted}/bin/pip ] || python3 -m venv {quoted}",
            *steps,
        ]
    )
