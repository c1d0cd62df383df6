"""The pyinfra provisioner: a deploy file run on the runner against the node, through the Docker API.

Options (under ``provisioner:`` in infranode.yaml)::

    provisioner:
      name: pyinfra
      deploy: deploy.py             # required; or a list, run in order
      data: {site_name: demo}       # --data key=value (host.data in the deploy)
      sudo: false                   # --sudo
      env: {}                       # environment of pyinfra
      args: ["--serial"]            # extra pyinfra arguments

pyinfra runs on the runner (``pip install 'pytest-infranode[pyinfra]'``) and targets
``@infranode/<container id>``: a connector shipped here (``pyinfra_connector.py``, entry point
``infranode`` in ``pyinfra.connectors``) that runs commands and uploads files through
pytest-infranode's engine. pyinfra's own ``@docker`` connector was not used: it needs the
docker CLI on the runner.

"Changed" is pyinfra's own: an operation counted under *Success* in its results table ran
commands on the host; *No Change* ones had nothing to do. The second converge of the
idempotence check runs with ``--diff``, so changed files show their diff in the log.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from typing import final

from pytest_infranode.hookspecs import hookimpl
from pytest_infranode.provisioners._common import Options
from pytest_infranode.provisioners._common import docker_host_for_tools
from pytest_infranode.provisioners._common import require_tool
from pytest_infranode.provisioners._common import run_streaming
from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import OutputSink
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.base import command_step

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_infranode.node import Node
    from pytest_infranode.settings import ProvisionerConfig

NAME = "pyinfra"
OPTIONS = ("deploy", "data", "sudo", "env", "args")
TOOL = "pyinfra"
INSTALL = "pip install 'pytest-infranode[pyinfra]' (or: pip install pyinfra)"
CONNECTOR_ENV = "INFRANODE_DOCKER_HOST"


def _options(config: ProvisionerConfig) -> Options:
    opts = Options(NAME, config)
    opts.check_known(OPTIONS)
    return opts


def validate(config: ProvisionerConfig) -> list[Path]:
    """Check the options; the deploy files. Pure apart from file checks."""
    opts = _options(config)
    deploys = opts.paths("deploy")
    if not deploys:
        raise opts.error("deploy", "`deploy` is required", "write `deploy: deploy.py` under `provisioner:`")
    opts.names("data")
    opts.boolean("sudo")
    opts.env()
    opts.strings("args")
    return deploys


def pyinfra_argv(tool: str, container_id: str, config: ProvisionerConfig, *, diff: bool) -> list[str]:
    """The pyinfra command line (an argv list, no shell). Pure apart from file checks."""
    opts = _options(config)
    argv = [tool, "-y", "--no-wait"]
    for key, value in opts.mapping("data").items():
        argv += ["--data", f"{key}={value}"]
    if opts.boolean("sudo"):
        argv.append("--sudo")
    if diff:
        argv.append("--diff")
    argv += opts.strings("args")
    return [*argv, f"@infranode/{container_id}", *(str(p) for p in validate(config))]


RESULTS_HEADER = ["Operation", "Hosts", "Success", "Error", "No Change"]


@final
class ResultsTable:
    """Reads pyinfra's ``--> Results:`` table from its output a line at a time (:meth:`feed`, an
    :class:`~pytest_infranode.provisioners.base.OutputTail`'s ``on_line``): the operations it
    reported as changing the host, and its error count. The last table counts. Pure.

    The table has the columns Operation, Hosts, Success, Error, No Change: an operation that ran
    commands on the host counts as *Success*, one that had nothing to do as *No Change*.
    """

    def __init__(self) -> None:
        self.changes = ChangeList()
        self.errors = 0
        self._state = "before"  # "header" (the next line is), "rows", "before"
        self._columns: list[int] = []

    def feed(self, line: str) -> None:
        if line.strip() == "--> Results:":
            self.changes, self.errors, self._state = ChangeList(), 0, "header"
        elif self._state == "header":
            names = re.findall(r"\S+(?: \S+)*", line)
            self._columns = [m.start() for m in re.finditer(r"\S+(?: \S+)*", line)]
            self._state = "rows" if names[:5] == RESULTS_HEADER else "before"
        elif self._state == "rows":
            if not line.strip() or line.startswith("-->"):
                self._state = "before"
                return
            columns = self._columns
            cells = [line[a:b].strip() for a, b in zip(columns, [*columns[1:], len(line) + 1], strict=False)]
            operation, success, error = cells[0], cells[2], cells[3]
            if operation == "Grand total":
                return
            if success not in ("", "-", "0"):
                self.changes.add(f"changed: {operation}")
            if error not in ("", "-", "0"):
                self.errors += int(error) if error.isdigit() else 1


def read_results(output: str) -> tuple[list[str], int]:
    """The operations pyinfra reported as changing the host, and its error count (see
    :class:`ResultsTable`). Pure."""
    table = ResultsTable()
    for line in output.splitlines():
        table.feed(line)
    return list(table.changes), table.errors


#: The lines in which pyinfra says what it starts: the step it is at.
STEP = re.compile(r"--> ((?:Starting|Preparing|Loading|Detected).*)")


@final
class PyinfraProvisioner:
    """Runs pyinfra on the runner against the node."""

    name = NAME
    tools = ("pyinfra",)
    """Its version is part of the converge cache's key."""

    def check(self, config: ProvisionerConfig) -> None:
        validate(config)
        require_tool(NAME, TOOL, INSTALL)

    def step_of(self, line: str) -> str | None:
        """``Starting operation: Install nginx`` (after ``--> ``), or a ``$ command`` header."""
        found = STEP.match(line)
        return found.group(1) if found else command_step(line)

    def converge(self, node: Node, config: ProvisionerConfig, output: OutputSink) -> ConvergeResult:
        tool = require_tool(NAME, TOOL, INSTALL)
        again = node.converge_round > 1
        argv = pyinfra_argv(tool, node.container_id, config, diff=again)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYINFRA_PROGRESS": "off", **_options(config).env()}
        docker_host = docker_host_for_tools(node)
        if docker_host:
            env[CONNECTOR_ENV] = docker_host
        table = ResultsTable()
        collected = OutputTail(output, on_line=table.feed)
        collected(f"$ {' '.join(argv)}\n".encode())
        status = run_streaming(argv, collected, env=env, cwd=config.base_dir)
        collected.flush()
        if status == 0 and table.errors:
            # pyinfra 3 may exit 0 when an operation failed in one of its greenlets.
            collected(f"\ninfranode: pyinfra reported {table.errors} failed operation(s)\n".encode())
            status = 1
        return collected.result(status, changed=bool(table.changes), changes=table.changes)


@hookimpl
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    return [PyinfraProvisioner()]
