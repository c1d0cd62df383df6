"""The puppet provisioner: ``puppet apply`` inside the node, with manifests and modules copied in.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: puppet
      manifest: manifests/site.pp   # required; a file, or a directory of manifests
      modules: modules              # optional; copied in and given as --modulepath
      facts: {role: web}            # FACTER_<name> variables
      install: true                 # install the agent from the platform's packages if missing
      args: ["--strict=warning"]    # extra `puppet apply` arguments

Files go in through the Docker API (``/var/lib/infranode/puppet``). When ``puppet`` is missing
the agent is installed from the platform's own packages (Debian: ``puppet-agent``, else
``puppet``); no vendor repository is added.

"Changed" is Puppet's own: ``--detailed-exitcodes`` exits 2 when resources changed, and each
changed resource is a ``Notice: /Stage[main]/…/ensure: …`` line. The idempotence run adds
``--show_diff``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from typing import final

from pytest_infranode.errors import ConvergeError
from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import in_node
from pytest_infranode.provisioners._common import tree_files
from pytest_infranode.provisioners._innode import ensure_in_node
from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import Provisioner

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

NAME = "puppet"
OPTIONS = ("manifest", "modules", "facts", "install", "args")
REMOTE = "/var/lib/infranode/puppet"
PACKAGES = (("puppet-agent",), ("puppet",))


def _options(config: ProvisionerConfig) -> Options:
    opts = Options(NAME, config)
    opts.check_known(OPTIONS)
    return opts


def validate(config: ProvisionerConfig) -> None:
    opts = _options(config)
    name = opts.string("manifest")
    if name is None:
        raise opts.error(
            "manifest", "`manifest` is required", "write `manifest: site.pp` under `provisioner:`"
        )
    path = config.base_dir / name
    opts.path("manifest", required=True, directory=path.is_dir(), into_node=True)
    opts.path("modules", directory=True, into_node=True)
    opts.texts("facts")
    opts.boolean("install", True)
    opts.strings("args")


def apply_argv(puppet: str, config: ProvisionerConfig, *, diff: bool) -> list[str]:
    """``puppet apply`` with the copied manifest and module path (argv list). Pure."""
    opts = _options(config)
    manifest = str(opts.string("manifest")).rstrip("/")
    argv = [puppet, "apply", "--detailed-exitcodes", "--color=false"]
    if opts.get("modules"):
        argv.append(f"--modulepath={REMOTE}/modules")
    if diff:
        argv.append("--show_diff")
    return [*argv, *opts.strings("args"), f"{REMOTE}/manifests/{manifest.rsplit('/', 1)[-1]}"]


def status_of(exit_code: int) -> tuple[int, bool]:
    """(exit status for the session, changed) from puppet's --detailed-exitcodes. Pure."""
    if exit_code in (0, 2):
        return 0, exit_code == 2
    return exit_code, exit_code in (6,)


_NOTICE = re.compile(r"^Notice: (?P<resource>/Stage\[[^\]]+\]/\S+?)/(?P<what>[\w]+: .*)$")


def changed_resource(line: str) -> str | None:
    """``changed: <resource>: <what>`` when ``line`` is Puppet's notice of a change. Pure."""
    m = _NOTICE.match(line)
    return f"changed: {m.group('resource')}: {m.group('what')}" if m else None


def changed_resources(output: str) -> list[str]:
    """``changed: <resource>: <what>`` for every resource Puppet changed. Pure."""
    return [c for c in map(changed_resource, output.splitlines()) if c is not None]


@final
class PuppetProvisioner:
    """Copies manifests and modules into the node and runs ``puppet apply`` there."""

    name = NAME

    def check(self, config: ProvisionerConfig) -> None:
        validate(config)

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        validate(config)
        opts = _options(config)
        again = node.converge_round > 1
        try:
            puppet = ensure_in_node(
                node,
                output,
                provisioner=NAME,
                tools=("puppet", "/opt/puppetlabs/bin/puppet"),
                packages=PACKAGES,
                install=opts.boolean("install", True),
                fix="use a platform whose image or packages have Puppet, or add its vendor "
                "repository in the platform's prepare steps",
            )
        except ConvergeError as err:
            output(f"{err}\n".encode())
            return ConvergeResult(127, str(err))
        manifest = config.base_dir / str(opts.string("manifest"))
        files = tree_files(manifest, "manifests/", config.file_rule) if manifest.is_dir() else {}
        if not files:
            files = {f"manifests/{manifest.name}": (manifest.read_bytes(), 0o644)}
        modules = opts.path("modules", directory=True)
        if modules is not None:
            files.update(tree_files(modules, "modules/", config.file_rule))
        in_node(node, ["rm", "-rf", REMOTE], output)
        node.put_files(REMOTE, files)
        env = {f"FACTER_{k}": v for k, v in opts.texts("facts").items()}
        changes = ChangeList()

        def read(line: str) -> None:
            change = changed_resource(line)
            if change is not None:
                changes.add(change)

        collected = OutputTail(output, on_line=read)
        code = in_node(node, apply_argv(puppet, config, diff=again), collected, env=env)
        status, changed = status_of(code)
        collected.flush()
        return collected.result(status, changed=changed or bool(changes), changes=changes)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [PuppetProvisioner()]
