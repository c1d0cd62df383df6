"""The chef provisioner: Chef Infra or Cinc client in local mode, with cookbooks copied in.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: chef
      cookbooks: cookbooks          # required; the cookbook directory
      run_list: ["recipe[web]"]     # required
      attributes: {web: {port: 80}} # node attributes (-j)
      client: cinc                  # cinc (default) or chef: which client binary to run
      install: never                # never (default), or omnitruck: the vendor's install.sh
      args: []                      # extra client arguments

Cookbooks go in through the Docker API (``/var/lib/infranode/chef``). Debian no longer ships a
Chef client, so it must be in the platform's image, or ``install: omnitruck`` fetches the
vendor's installer (omnitruck.cinc.sh or omnitruck.chef.io) in the node, which needs that
site to be reachable.

"Changed" is Chef's own: ``Chef Infra Client finished, N/M resources updated`` with N > 0, and
each updated resource (``* <type>[<name>] action <action>`` followed by ``- …`` lines).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from typing import final

from pytest_infranode.errors import ConvergeError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import in_node
from pytest_infranode.provisioners._common import tree_files
from pytest_infranode.provisioners._innode import find_in_node
from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import command_step

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

NAME = "chef"
OPTIONS = ("cookbooks", "run_list", "attributes", "client", "install", "args")
CLIENTS = {"cinc": "cinc-client", "chef": "chef-client"}
OMNITRUCK = {"cinc": "https://omnitruck.cinc.sh/install.sh", "chef": "https://omnitruck.chef.io/install.sh"}
REMOTE = "/var/lib/infranode/chef"


def _options(config: ProvisionerConfig) -> Options:
    opts = Options(NAME, config)
    opts.check_known(OPTIONS)
    return opts


def validate(config: ProvisionerConfig) -> None:
    opts = _options(config)
    if opts.get("cookbooks") is None:
        raise opts.error("cookbooks", "`cookbooks` is required", "write `cookbooks: cookbooks`")
    opts.path("cookbooks", directory=True, into_node=True)
    if not opts.strings("run_list"):
        raise opts.error("run_list", "`run_list` is required", 'write `run_list: ["recipe[web]"]`')
    opts.mapping("attributes")
    client = opts.string("client", "cinc")
    if client not in CLIENTS:
        raise opts.error("client", f"`client` must be cinc or chef, not {client!r}")
    install = opts.string("install", "never")
    if install not in ("never", "omnitruck"):
        raise opts.error("install", f"`install` must be never or omnitruck, not {install!r}")
    opts.strings("args")


def client_argv(binary: str, config: ProvisionerConfig) -> list[str]:
    """The client's local-mode command line (argv list). Pure."""
    opts = _options(config)
    return [
        binary,
        "--local-mode",
        "--chef-license",
        "accept-silent",
        "--no-color",
        "--config-option",
        f"cookbook_path={REMOTE}/cookbooks",
        "--config-option",
        f"file_cache_path={REMOTE}/cache",
        "-j",
        f"{REMOTE}/attributes.json",
        "--override-runlist",
        ",".join(opts.strings("run_list")),
        *opts.strings("args"),
    ]


def install_argv(config: ProvisionerConfig) -> list[str]:
    """The vendor installer, run in the node (argv list; the URL is fixed, not user input). Pure."""
    client = _options(config).string("client", "cinc") or "cinc"
    return ["/bin/sh", "-c", f"curl -fsSL {OMNITRUCK[client]} | bash"]


_FINISHED = re.compile(r"(?:Chef|Cinc)(?: Infra)? Client finished, (\d+)/(\d+) resources updated")
_RESOURCE = re.compile(r"^\s*\* (?P<resource>\w+\[[^\]]+\]) action (?P<action>\w+)\s*$")


@final
class ChefChanges:
    """Reads what the Chef/Cinc client changed from its output a line at a time (:meth:`feed`):
    each resource with ``-`` lines under it (what it did) is a change, and the client's closing
    ``N/M resources updated`` is counted. Call :meth:`done` after the last line. Pure."""

    def __init__(self) -> None:
        self.changes = ChangeList()
        self.updated = 0
        self._current: list[str] = []

    def _close(self) -> None:
        if len(self._current) > 1:
            self.changes.add("\n".join(self._current))
        self._current = []

    def feed(self, line: str) -> None:
        finished = _FINISHED.search(line)
        if finished:
            self.updated = int(finished.group(1))
        m = _RESOURCE.match(line)
        if m:
            self._close()
            self._current = [f"changed: {m.group('resource')} action {m.group('action')}"]
        elif self._current and line.strip().startswith("- "):
            if len(self._current) <= MAX_RESOURCE_LINES:
                self._current.append("  " + line.strip())
        elif self._current and line.strip() and not line.startswith(" "):
            self._close()

    def done(self) -> None:
        self._close()


#: The ``-`` lines kept under one changed resource (a long diff is in the log).
MAX_RESOURCE_LINES = 200


def changed_resources(output: str) -> tuple[int, list[str]]:
    """(resources updated, ``changed: type[name] action x`` with their ``-`` lines). Pure."""
    reader = ChefChanges()
    for line in output.splitlines():
        reader.feed(line)
    reader.done()
    return reader.updated, list(reader.changes)


#: The resource lines of the Chef/Cinc client's output (``* apt_package[nginx] action install``).
STEP = re.compile(r"\s*\* (\w+\[.+?\]) action .*")


@final
class ChefProvisioner:
    """Copies cookbooks into the node and runs the Chef/Cinc client in local mode there."""

    name = NAME

    def check(self, config: ProvisionerConfig) -> None:
        validate(config)

    def step_of(self, line: str) -> str | None:
        """The resource being converged (``apt_package[nginx]``), or a ``$ command`` header."""
        found = STEP.match(line)
        return found.group(1) if found else command_step(line)

    def _client(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> str:
        opts = _options(config)
        client = opts.string("client", "cinc") or "cinc"
        binary = CLIENTS[client]
        candidates = (binary, f"/opt/{client}/bin/{binary}")
        found = find_in_node(node, candidates)
        if found:
            return found
        install = opts.string("install", "never")
        if install == "omnitruck" and in_node(node, install_argv(config), output) == 0:
            found = find_in_node(node, candidates)
            if found:
                return found
        tried = f" (tried: {OMNITRUCK[client]})" if install == "omnitruck" else " (install: never)"
        raise ConvergeError(
            f"the chef provisioner needs `{binary}` in the node, and it is not there{tried}",
            where=node.where,
            fix=f"use a platform image with the {client} client, or `install: omnitruck` where "
            f"{OMNITRUCK[client].split('/')[2]} is reachable",
        )

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        validate(config)
        opts = _options(config)
        try:
            binary = self._client(node, config, output)
        except ConvergeError as err:
            output(f"{err}\n".encode())
            return ConvergeResult(127, str(err))
        cookbooks = opts.path("cookbooks", directory=True)
        assert cookbooks is not None
        files = tree_files(cookbooks, "cookbooks/", config.file_rule)
        files["attributes.json"] = (json.dumps(opts.mapping("attributes")).encode(), 0o600)
        in_node(node, ["rm", "-rf", REMOTE], output)
        node.put_files(REMOTE, files)
        reader = ChefChanges()
        collected = OutputTail(output, on_line=reader.feed)
        code = in_node(node, client_argv(binary, config), collected)
        collected.flush()
        reader.done()
        changes = reader.changes
        return collected.result(code, changed=reader.updated > 0 or bool(changes), changes=changes)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [ChefProvisioner()]
