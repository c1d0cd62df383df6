"""The pytest glue: options and ini keys, hooks, parametrization per platform, fixtures."""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import testinfra.host

from pytest_infranode import hookspecs
from pytest_infranode.backend import make_host
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import SettingsError
from pytest_infranode.node import Node
from pytest_infranode.platforms import Platform
from pytest_infranode.provisioners import BUILTIN_MODULES
from pytest_infranode.session import InfraSession
from pytest_infranode.settings import KEEP_CHOICES
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings

SESSION_KEY = pytest.StashKey[InfraSession]()
PLATFORM_KEY = pytest.StashKey[str]()
PLUGIN_NAME = "infranode-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infranode", "infrastructure nodes (pytest-infranode)")
    group.addoption(
        "--infra-platform",
        action="append",
        dest="infra_platform",
        metavar="NAMES",
        default=None,
        help="Platforms to run node tests on, comma-separated (e.g. debian-12,debian-13); "
        "repeatable; default: none, node tests are not run",
    )
    group.addoption(
        "--infra-keep",
        dest="infra_keep",
        choices=KEEP_CHOICES,
        default=None,
        help="Keep nodes after the session: never, failure (nodes with a failed test) or always; "
        "default: never",
    )
    group.addoption(
        "--infra-config",
        dest="infra_config",
        metavar="PATH",
        default=None,
        help="Configuration file; default: infranode.yaml in the rootdir, else [tool.infranode] "
        "in pyproject.toml",
    )
    group.addoption(
        "--infra-docker-host",
        dest="infra_docker_host",
        metavar="URL",
        default=None,
        help="Docker daemon to use (unix://, tcp://, ssh://); default: DOCKER_HOST, then the local socket",
    )
    group.addoption(
        "--infra-boot-timeout",
        dest="infra_boot_timeout",
        type=float,
        metavar="SECONDS",
        default=None,
        help="How long a node's init may take to boot; default: 120",
    )
    group.addoption(
        "--infra-converge-timeout",
        dest="infra_converge_timeout",
        type=float,
        metavar="SECONDS",
        default=None,
        help="Stop a converge that runs longer than this and fail its node; default: 3600",
    )
    parser.addini(
        "infra_platforms", "Platforms to run node tests on (like --infra-platform)", type="linelist"
    )
    parser.addini("infra_keep", "Keep nodes after the session: never, failure or always", default="")
    parser.addini("infra_config", "Configuration file (like --infra-config)", default="")
    parser.addini("infra_docker_host", "Docker daemon to use (like --infra-docker-host)", default="")
    parser.addini("infra_boot_timeout", "Seconds a node's init may take to boot", default="")
    parser.addini(
        "infra_converge_timeout", "Seconds a converge may take (like --infra-converge-timeout)", default=""
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _raw_options(config: pytest.Config) -> RawOptions:
    ini_platforms = config.getini("infra_platforms")
    return RawOptions(
        cli_platforms=config.getoption("infra_platform"),
        ini_platforms=list(ini_platforms) if ini_platforms else None,
        cli_keep=config.getoption("infra_keep"),
        ini_keep=str(config.getini("infra_keep")) or None,
        cli_config=config.getoption("infra_config"),
        ini_config=str(config.getini("infra_config")) or None,
        cli_docker_host=config.getoption("infra_docker_host"),
        ini_docker_host=str(config.getini("infra_docker_host")) or None,
        cli_boot_timeout=config.getoption("infra_boot_timeout"),
        ini_boot_timeout=str(config.getini("infra_boot_timeout")) or None,
        cli_converge_timeout=config.getoption("infra_converge_timeout"),
        ini_converge_timeout=str(config.getini("infra_converge_timeout")) or None,
    )


class _HostOverride:
    """Registered only when platforms are given, after every setuptools plugin, so that this
    ``host`` wins over pytest-testinfra's (which would parametrize tests with ``[local]``)."""

    @pytest.fixture(scope="session")
    @classmethod
    def host(cls, infra_node: Node) -> testinfra.host.Host:
        """A testinfra ``Host`` bound to the node of the current platform."""
        return make_host(infra_node)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "infra_platforms(*names): run this test only on these platforms")
    for name in BUILTIN_MODULES:
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(importlib.import_module(name), name)
    try:
        settings = build_settings(_raw_options(config), config.rootpath)
    except SettingsError as err:
        raise pytest.UsageError(str(err)) from None
    if not settings.enabled:
        return
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    cache_dir = cache.mkdir("infranode-logs") if cache else Path(tempfile.mkdtemp(prefix="infranode-logs-"))

    def say(message: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or config.getoption("verbose") < 0:
            return
        capman = config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(f"infranode: {message}")

    try:
        session = InfraSession(settings, config.hook, log_dir=cache_dir, say=say)
        session.check_provisioner()
    except InfranodeError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, PLUGIN_NAME)
    config.pluginmanager.register(_HostOverride(), "infranode-host")
    _install_sigterm(config)


def _install_sigterm(config: pytest.Config) -> None:
    """Turn SIGTERM (a cancelled CI job) into KeyboardInterrupt so teardown runs."""
    if sys.platform == "win32":  # pragma: no cover
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not in the main thread (an embedding runner): leave it alone
        return

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    infra = session.config.stash.get(SESSION_KEY, None)
    if infra is None or session.config.getoption("collectonly"):
        return
    try:
        infra.connect()
    except DaemonError as err:
        raise pytest.UsageError(f"pytest-infranode cannot use the Docker daemon:\n{err}") from None


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
    if "infra_platform" not in metafunc.fixturenames:
        return
    infra = metafunc.config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    platforms = infra.platforms
    marker = metafunc.definition.get_closest_marker("infra_platforms")
    if marker is not None:
        _check_marker(marker, infra)
    params = []
    for platform in platforms:
        marks = []
        if marker is not None and not _marker_allows(marker, platform):
            marks.append(
                pytest.mark.skip(reason=f"not for platform {platform.name} (infra_platforms marker)")
            )
        params.append(pytest.param(platform, id=platform.name, marks=marks))
    metafunc.parametrize("infra_platform", params, indirect=True, scope="session")


def _check_marker(marker: pytest.Mark, infra: InfraSession) -> None:
    """A typo in the marker must not silently skip a test everywhere."""
    known = {n for p in infra.catalog for n in (p.name, p.family, *p.aliases)}
    unknown = [str(a) for a in marker.args if str(a) not in known]
    if unknown:
        try:
            infra.catalog.get(unknown[0], where="@pytest.mark.infra_platforms")
        except InfranodeError as err:
            pytest.fail(str(err).replace("unknown platform", "unknown platform or family", 1), pytrace=False)


def _marker_allows(marker: pytest.Mark, platform: Platform) -> bool:
    names = {str(a) for a in marker.args}
    return bool(names & {platform.name, platform.family, *platform.aliases})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    platform = item.stash.get(PLATFORM_KEY, None)
    infra = item.config.stash.get(SESSION_KEY, None)
    if platform and infra is not None and report.failed:
        infra.record_failure(platform)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    infra = session.config.stash.get(SESSION_KEY, None)
    if infra is not None:
        infra.teardown()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    infra = config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    lines = infra.summary_lines()
    if lines:
        terminalreporter.section("infranode")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    infra = config.stash.get(SESSION_KEY, None)
    if infra is None:
        return
    infra.teardown()  # a no-op after sessionfinish; the last resort when a session crashed
    if infra.engine is not None:
        infra.engine.close()
    del config.stash[SESSION_KEY]
    if config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.unregister(name=PLUGIN_NAME)


@pytest.fixture(scope="session")
def infra_platform(request: pytest.FixtureRequest) -> Platform:
    """The :class:`~pytest_infranode.Platform` of the current test (its id is the platform name)."""
    if not hasattr(request, "param"):
        pytest.fail(
            "no platform given: run with --infra-platform=debian-12 (or set infra_platforms in "
            "the ini file, or `platforms:` in infranode.yaml)",
            pytrace=False,
        )
    platform: Platform = request.param
    return platform


@pytest.fixture(scope="session")
def infra_node(request: pytest.FixtureRequest, infra_platform: Platform) -> Node:
    """The converged node of the current platform: ``name``, ``platform``, ``container_id``,
    ``address``, ``run(command)``, ``run_argv(argv)``, ``put_files``, ``logs()``.

    Made and converged before the first test that needs it, shared by the session, removed at
    its end (see ``--infra-keep``).
    """
    infra = request.config.stash.get(SESSION_KEY, None)
    if infra is None:  # pragma: no cover - infra_platform already failed
        pytest.fail("pytest-infranode is not active", pytrace=False)
    try:
        return infra.node_for(infra_platform)
    except InfranodeError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "infra_platform" in callspec.params:
        item.stash[PLATFORM_KEY] = callspec.params["infra_platform"].name
