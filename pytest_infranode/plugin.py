"""The pytest glue: options and ini keys, hooks, parametrization per platform, fixtures."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

from pytest_infranode import hookspecs
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.options import OPTIONS
from pytest_infranode.options import RawOptions
from pytest_infranode.platforms import Platform
from pytest_infranode.progress import ProgressPlugin
from pytest_infranode.progress import without_escapes
from pytest_infranode.provisioners import BUILTIN_MODULES
from pytest_infranode.provisioners.base import file_tail
from pytest_infranode.settings import build_settings
from pytest_infranode.signals import SignalHandlers

# What talks to Docker (the session, nodes, the testinfra backend) is imported only once a run
# has platforms: pytest loads this module in every run of an environment that has the plugin,
# and a run without platforms should not pay for the Docker SDK and testinfra.
if TYPE_CHECKING:
    import testinfra.host

    from pytest_infranode.node import Node
    from pytest_infranode.session import InfraSession
    from pytest_infranode.targets import Target

SESSION_KEY = pytest.StashKey["InfraSession"]()
TARGET_KEY = pytest.StashKey["Target"]()
POSITION_KEY = pytest.StashKey[int]()
PLATFORM_ENV_KEY = pytest.StashKey[dict[str, dict[str, str]]]()
"""Platform name → the variables its tests see differently from the session's (a Molecule
scenario's ``MOLECULE_INVENTORY_FILE`` when the session runs several platforms)."""
LOG_TAIL_LINES = 40
PLUGIN_NAME = "infranode-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every option and ini key of the table in ``options.py``."""
    group = parser.getgroup("infranode", "infrastructure nodes (pytest-infranode)")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.dest, "default": None, "help": option.help}
        if option.kind == "flag":
            kwargs.update(action="store_const", const=True)
        else:
            kwargs["metavar"] = option.metavar or ("SECONDS" if option.kind == "seconds" else None)
        if option.kind == "names":
            kwargs["action"] = "append"
        if option.kind == "seconds":
            kwargs["type"] = float
        if option.kind == "count":
            kwargs["type"] = int
        if option.choices:
            kwargs["choices"] = option.choices
            del kwargs["metavar"]
        group.addoption(option.flag, **{k: v for k, v in kwargs.items() if v is not None or k == "default"})
        if option.kind == "names":
            parser.addini(option.ini_key, option.ini_help, type="linelist")
        else:
            parser.addini(option.ini_key, option.ini_help, default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _raw_options(config: pytest.Config) -> RawOptions:
    return RawOptions.read(config.getoption, config.getini)


class _HostOverride:
    """Registered only when platforms are given, after every setuptools plugin, so that this
    ``host`` wins over pytest-testinfra's (which would parametrize tests with ``[local]``)."""

    @pytest.fixture(scope="session")
    @classmethod
    def host(cls, request: pytest.FixtureRequest, infra_node: Node) -> testinfra.host.Host:
        """A testinfra ``Host`` bound to the node of the current platform."""
        from pytest_infranode.backend import make_host

        infra = request.config.stash.get(SESSION_KEY, None)
        if infra is None:  # pragma: no cover - infra_node already failed
            return make_host(infra_node)
        inventory = infra.inventory_path(infra_node.platform)
        return make_host(
            infra_node,
            command_timeout=infra.settings.command_timeout,
            inventory=(str(inventory), infra.inventory_name(infra_node)) if inventory.is_file() else None,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "infra_platforms(*names): run this test only on these platforms (names, aliases or families); "
        "on the others it is reported as skipped",
    )
    config.addinivalue_line(
        "markers",
        "infra_node(*names, group=None): run this test on these nodes of `nodes:` (each one), or on "
        "every node of a group; default: the first node",
    )
    for name in BUILTIN_MODULES:
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(importlib.import_module(name), name)
    try:
        settings = build_settings(
            _raw_options(config), config.rootpath, config.hook.pytest_infranode_add_platforms
        )
    except InfranodeError as err:  # a setting, a platform name, a plugin's platform
        raise pytest.UsageError(str(err)) from None
    if not settings.enabled:
        return
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    cache_dir = cache.mkdir("infranode-logs") if cache else Path(tempfile.mkdtemp(prefix="infranode-logs-"))

    write = _terminal_line_writer(config)

    def say(message: str) -> None:
        if config.getoption("verbose") >= 0:
            write(f"infranode: {message}")

    from pytest_infranode.session import InfraSession

    try:
        session = InfraSession(settings, config.hook, log_dir=cache_dir, say=say)
        if config.getoption("capture") == "no" or config.getoption("verbose") > 0:
            session.echo_line = write
        session.check_provisioner()
    except InfranodeError as err:
        raise pytest.UsageError(str(err)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "infranode_session" in workerinput:
        session.join(workerinput)
    elif _is_xdist_controller(config):
        session.become_controller()
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, PLUGIN_NAME)
    _session_inventory(config, session, cache_dir)
    # Live progress of long converges: a line every 5 s on a terminal, every 15 s in a CI log.
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    tty = bool(reporter is not None and reporter.isatty())
    progress = ProgressPlugin(say, cache_dir, tty=tty)
    config.pluginmanager.register(progress, "infranode-progress")
    session.run_progress = progress.progress_of_run  # runs over several nodes have no converge hook
    config.pluginmanager.register(_HostOverride(), "infranode-host")
    _warn_unused_testinfra_options(config)
    interrupts = SignalHandlers(session, say)
    config.pluginmanager.register(interrupts, "infranode-interrupts")
    interrupts.install(config)


TESTINFRA_OPTIONS = (
    "connection",
    "hosts",
    "ansible_inventory",
    "force_ansible",
    "ssh_config",
    "ssh_extra_args",
    "ssh_identity_file",
    "sudo",
    "sudo_user",
)
"""pytest-testinfra's options (their ``dest``) that choose or reach the hosts: with platforms
given, the ``host`` fixture is the plugin's, so they do nothing (Molecule's verifier passes the
first three)."""


def _warn_unused_testinfra_options(config: pytest.Config) -> None:
    given = ["--" + dest.replace("_", "-") for dest in TESTINFRA_OPTIONS if config.getoption(dest, None)]
    if given:
        config.issue_config_time_warning(
            InfranodeWarning(
                f"pytest-testinfra's {', '.join(given)} not used: with platforms given, the `host` "
                "fixture is bound to the plugin's nodes (through their exec channel); a module's "
                "`testinfra_hosts` or `@pytest.mark.infra_node(...)` chooses the node, and testinfra's "
                "module runner on `host` uses the session inventory. Drop the option(s)"
            ),
            stacklevel=2,
        )


def _session_inventory(config: pytest.Config, session: InfraSession, log_dir: Path) -> None:
    """Write the session's inventories (before collection: specs read them), and set what the
    specs' own runs of the tool need to use them (its plugins; the tools next to this Python on
    ``PATH``); when the configuration came from a Molecule scenario, the ``MOLECULE_*``
    variables Molecule sets for its verifier and molecule.yml's ``verifier.env`` too. All
    restored at the end."""
    try:
        written = session.write_inventories()
    except OSError as err:
        raise pytest.UsageError(f"pytest-infranode cannot write the session inventory: {err}") from None
    from pytest_infranode.molecule.environment import instance_config_text
    from pytest_infranode.molecule.environment import platform_variables
    from pytest_infranode.molecule.environment import scenario_of
    from pytest_infranode.molecule.environment import session_variables
    from pytest_infranode.molecule.environment import tools_path
    from pytest_infranode.molecule.environment import verifier_env

    if not written:
        return
    variables = session.inventory_env()
    path = tools_path(os.environ, Path(sys.executable).parent)
    if path is not None:
        variables["PATH"] = path
    scenario = scenario_of(session.settings.config_file)
    if scenario is not None:
        ephemeral = log_dir / f"infranode-{session.session_id}.molecule"
        ephemeral.mkdir(parents=True, exist_ok=True)
        variables.update(session_variables(scenario, inventory=written[0], ephemeral=ephemeral))
        hosts = {h.name: h.container for h in session.inventory_hosts(session.platforms[0])}
        Path(variables["MOLECULE_INSTANCE_CONFIG"]).write_text(instance_config_text(hosts))
        try:  # over the rest, as Molecule merges it
            variables.update(verifier_env(scenario, {**os.environ, **variables}))
            config.stash[PLATFORM_ENV_KEY] = {
                p.name: platform_variables(scenario, variables, session.inventory_path(p), os.environ)
                for p in session.platforms
            }
        except InfranodeError as err:  # a mistake in molecule.yml, with its file:line
            raise pytest.UsageError(str(err)) from None
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    config.add_cleanup(restore)


def _terminal_line_writer(config: pytest.Config) -> Callable[[str], None]:
    """Write a line to the terminal from anywhere (a fixture, a thread), outside output capture:
    progress lines, and converge output shown live under -s or -v."""

    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capman = config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(line)

    return write


def _is_xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests to pytest-xdist workers (``-n 2``)."""
    if getattr(config, "workerinput", None) is not None or not config.pluginmanager.hasplugin("xdist"):
        return False
    return bool(getattr(config.option, "numprocesses", None)) and config.getoption("dist", "no") != "no"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: each worker joins this session (same id, same nodes); see ``sharing.py``."""
    infra = node.config.stash.get(SESSION_KEY, None)
    if infra is not None:
        node.workerinput.update(infra.become_controller())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    infra = session.config.stash.get(SESSION_KEY, None)
    if infra is None or session.config.getoption("collectonly"):
        return
    try:
        infra.connect()
    except DaemonError as err:
        raise pytest.UsageError(f"pytest-infranode cannot use the Docker daemon:\n{err}") from None
    if infra.role == "controller":
        infra.start_watchdog()  # the workers make the nodes; this process outlives them


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    infra = config.stash.get(SESSION_KEY, None)
    if infra is None:
        return None
    daemon = infra.engine.describe() if infra.engine else "not connected"
    names = ", ".join(p.name for p in infra.platforms)
    return [
        f"infranode: platforms {names} (from {infra.settings.platforms_source}); "
        f"provisioner {infra.provisioner.name}",
        f"infranode: daemon {daemon}; session {infra.session_id}",
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "_infra_target" not in metafunc.fixturenames:
        return
    infra = metafunc.config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    platforms = infra.platforms
    marker = metafunc.definition.get_closest_marker("infra_platforms")
    if marker is not None:
        _check_marker(marker, infra)
    from pytest_infranode.targets import Target

    shorts = _chosen_nodes(metafunc, infra)
    params = []
    for platform in platforms:
        marks = []
        if marker is not None and not _marker_allows(marker, platform):
            marks.append(
                pytest.mark.skip(reason=f"not for platform {platform.name} (infra_platforms marker)")
            )
        # nodes of their own platform (a scenario of different images) are made only there
        on = infra.layout.names_on(platform.name)
        for short in [s for s in shorts if s in on] if shorts else [infra.layout.default_on(platform.name)]:
            test_id = platform.name if len(shorts) <= 1 else f"{platform.name}-{short}"
            params.append(pytest.param(Target(platform, short), id=test_id, marks=marks))
    metafunc.parametrize("_infra_target", params, indirect=True, scope="session")


def _chosen_nodes(metafunc: pytest.Metafunc, infra: InfraSession) -> list[str]:
    """The marker's nodes, else those of the module's ``testinfra_hosts``, else [] (the first
    one of each platform)."""
    marker = metafunc.definition.get_closest_marker("infra_node")
    hosts = getattr(metafunc.module, "testinfra_hosts", None) if metafunc.module is not None else None
    if marker is None and hosts is not None:
        try:
            specs = [hosts] if isinstance(hosts, str) else list(hosts)
            return infra.select_hosts(specs, where=f"testinfra_hosts of {metafunc.module.__file__}")
        except (InfranodeError, TypeError) as err:
            message = str(err)
        pytest.fail(message, pytrace=False)
    if marker is None:
        return []
    unknown = set(marker.kwargs) - {"group"}
    if unknown or not all(isinstance(a, str) for a in marker.args):
        pytest.fail(
            f"@pytest.mark.infra_node takes node names and `group=`, not {marker.args!r} {marker.kwargs!r}",
            pytrace=False,
        )
    try:
        return infra.select_nodes(tuple(marker.args), marker.kwargs.get("group"))
    except InfranodeError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)  # outside `except`: no "during handling" chain


def _check_marker(marker: pytest.Mark, infra: InfraSession) -> None:
    """A typo in the marker must not silently skip a test everywhere."""
    known = {n for p in infra.catalog for n in (p.name, p.family, *p.aliases)}
    unknown = [str(a) for a in marker.args if str(a) not in known]
    if unknown:
        try:
            infra.catalog.get(unknown[0], where="@pytest.mark.infra_platforms")
        except InfranodeError as err:
            message = str(err).replace("unknown platform", "unknown platform or family", 1)
        else:  # pragma: no cover - get() raises for an unknown name
            return
        pytest.fail(message, pytrace=False)  # outside `except`: no "during handling" chain


def _marker_allows(marker: pytest.Mark, platform: Platform) -> bool:
    names = {str(a) for a in marker.args}
    return bool(names & {platform.name, platform.family, *platform.aliases})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    """The variables of the item's platform (:data:`PLATFORM_ENV_KEY`) around its setup, call
    and teardown, the session's restored after it."""
    platform = _platform_of(item)
    changes = item.config.stash.get(PLATFORM_ENV_KEY, {}).get(platform, {}) if platform else {}
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        return (yield)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _platform_of(item: pytest.Item) -> str:
    """The platform an item runs on: its ``_infra_target``'s, a verify test's; "" for others."""
    verify_platform = getattr(item, "verify_platform", None)
    if verify_platform is not None:
        return str(verify_platform.name)
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("_infra_target") if callspec is not None else None
    return str(target.platform.name) if target is not None else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    infra = item.config.stash.get(SESSION_KEY, None)
    target = item.stash.get(TARGET_KEY, None)
    if infra is not None and target is not None and call.when == "setup":
        # Before the report is made, so that every phase's report (and JUnit XML) carries them.
        item.user_properties.append(("infra_platform", target.platform.name))
        item.user_properties.append(("infra_node", infra.node_name(target)))
    report = yield
    if infra is not None and target is not None and report.failed:
        infra.record_failure(target.platform)
        _add_node_sections(report, infra, target)
    return report


def _add_node_sections(report: pytest.TestReport, infra: InfraSession, target: Target) -> None:
    """A failed test carries its node's converge log and container log (tails)."""
    node = infra.find_node(target)
    if node is None:
        return
    if node.converge_log:
        tail = file_tail(Path(node.converge_log), LOG_TAIL_LINES)  # the log may be gigabytes
        if tail:
            report.sections.append((f"infranode converge log of {node.name} (tail)", without_escapes(tail)))
    alive = node.state not in ("failed", "removed")
    if alive:
        try:
            why = node.unit_report()
        except InfranodeError:
            why = None
        if why:
            report.sections.append((f"infranode units of {node.name} that do not run", why))
    container_log = node.logs(LOG_TAIL_LINES) if alive else node.log_tail
    title = f"infranode container log of {node.name} (tail)"
    if not container_log.strip() and alive and node.platform.init == "systemd":
        # systemd writes to its journal, not to the console that `docker logs` shows.
        try:
            journal = node.run_argv(["journalctl", "--no-pager", "-q", "-n", str(LOG_TAIL_LINES)])
            container_log = journal.stdout.decode(errors="replace")
            title = f"infranode container log of {node.name} (tail, from the journal)"
        except InfranodeError:
            container_log = ""
    report.sections.append((title, without_escapes(container_log) if container_log.strip() else "(empty)"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    infra = session.config.stash.get(SESSION_KEY, None)
    if infra is not None:
        infra.activity = "the collection"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    infra = session.config.stash.get(SESSION_KEY, None)
    if infra is not None:
        infra.teardown()
        if infra.cancel.is_set:  # also when the signal came during the teardown
            session.exitstatus = pytest.ExitCode.INTERRUPTED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    infra = config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    table = infra.node_table()
    lines = infra.summary_lines()
    if table or lines:
        terminalreporter.section("infranode")
        for line in [*table, *lines]:
            terminalreporter.write_line(line)
    if infra.cancel.is_set and exitstatus != pytest.ExitCode.INTERRUPTED:
        # The signal came during the teardown, after pytest chose the run's verdict: say it as
        # pytest says a KeyboardInterrupt (the exit code is 2 all the same).
        terminalreporter.write_sep("!", f"KeyboardInterrupt: {infra.cancel.reason} during the teardown")


def pytest_unconfigure(config: pytest.Config) -> None:
    infra = config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    infra.teardown()  # a no-op after sessionfinish; the last resort when a session crashed
    if infra.engine is not None:
        infra.engine.close()
    if infra.role == "controller" and infra.shared is not None:
        infra.shared.remove()
    del config.stash[SESSION_KEY]
    if config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.unregister(name=PLUGIN_NAME)


@pytest.fixture(scope="session")
def _infra_target(request: pytest.FixtureRequest) -> Generator[Target, None, None]:
    """The platform and node of the current test (parametrized by ``pytest_generate_tests``)."""
    if not hasattr(request, "param"):
        pytest.fail(
            "no platform given: run with --infra-platform=debian-12 (or set infra_platforms in "
            "the ini file, or `platforms:` in infranode.yaml)",
            pytrace=False,
        )
    target: Target = request.param
    yield target
    # pytest finishes this fixture (after every fixture that uses it) when a test needs another
    # platform, or at the end: the platform's nodes can go now if no later test uses them.
    infra = request.config.stash.get(SESSION_KEY, None)
    if infra is not None:
        infra.done_with(target.platform)


@pytest.fixture(scope="session")
def infra_platform(_infra_target: Target) -> Platform:
    """The :class:`~pytest_infranode.Platform` of the current test (its id is the platform name)."""
    return _infra_target.platform


def _session(request: pytest.FixtureRequest) -> InfraSession:
    infra = request.config.stash.get(SESSION_KEY, None)
    if infra is None:  # pragma: no cover - _infra_target already failed
        pytest.fail("pytest-infranode is not active", pytrace=False)
    return infra


@pytest.fixture(scope="session")
def infra_node(request: pytest.FixtureRequest, _infra_target: Target) -> Node:
    """The converged node of the current test: ``name``, ``short_name``, ``platform``,
    ``container_id``, ``address``, ``run(command)``, ``run_argv(argv)``, ``put_files(dir, files)``,
    ``get_file(path)``, ``logs()``, ``published_ports`` and ``port(number)``.

    With ``nodes:`` in infranode.yaml, the node named by ``@pytest.mark.infra_node("db")``, else
    the first one. Made and converged (after the nodes it depends on) before the first test that
    needs it, shared by the session, removed after the last test of its platform (see
    ``--infra-keep``).
    """
    try:
        return _session(request).node_for(_infra_target.platform, _infra_target.node)
    except InfranodeError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)  # outside `except`: the error once, not chained twice


@pytest.fixture(scope="session")
def infra_inventory(request: pytest.FixtureRequest, infra_platform: Platform) -> Path:
    """The session's inventory of the current platform's nodes (written before collection,
    rewritten by each converge over all of them), when the provisioner writes one."""
    path = _session(request).inventory_path(infra_platform)
    if not path.is_file():
        pytest.fail(
            f"the {_session(request).provisioner.name} provisioner writes no inventory", pytrace=False
        )
    return path


@pytest.fixture(scope="session")
def infra_nodes(request: pytest.FixtureRequest, infra_platform: Platform) -> dict[str, Node]:
    """Every node of the current platform, by its name in ``nodes:`` (``{"web": ..., "db": ...}``;
    ``{"default": ...}`` without ``nodes:``), all converged in ``depends_on`` order.
    """
    try:
        return _session(request).nodes_of(infra_platform)
    except InfranodeError as err:
        message = str(err)
    pytest.fail(message, pytrace=False)  # outside `except`: the error once, not chained twice


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The provisioner's ``verify`` file (``verify.yml``), collected as a test per platform."""
    infra = parent.config.stash.get(SESSION_KEY, None)
    if infra is None:
        return None
    from pytest_infranode import verifyitems

    return verifyitems.collect(file_path, parent, infra)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Tell the session which nodes the selected tests use, to make them side by side."""
    infra = session.config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    from pytest_infranode.targets import Target

    targets: list[Target] = []
    for position, item in enumerate(session.items):
        item.stash[POSITION_KEY] = position
        verify_platform = getattr(item, "verify_platform", None)
        if verify_platform is not None:  # a verify test (verifyitems.py): every node of its platform
            infra.last_use[verify_platform.name] = position
            targets += infra.span_targets(verify_platform)
            continue
        callspec = getattr(item, "callspec", None)
        fixtures = getattr(item, "fixturenames", ())
        if callspec is None or "_infra_target" not in callspec.params:
            continue
        target: Target = callspec.params["_infra_target"]
        infra.last_use[target.platform.name] = position
        if item.get_closest_marker("skip"):
            continue
        if "infra_nodes" in fixtures:
            targets += [
                Target(target.platform, short) for short in infra.layout.names_on(target.platform.name)
            ]
        elif "infra_node" in fixtures:
            targets.append(target)
    infra.plan(targets)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    infra = item.config.stash.get(SESSION_KEY, None)
    if infra is not None:
        infra.position = item.stash.get(POSITION_KEY, -1)
        infra.activity = f"test {item.nodeid}"
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "_infra_target" in callspec.params:
        item.stash[TARGET_KEY] = callspec.params["_infra_target"]
