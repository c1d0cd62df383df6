"""Parallel bring-up and teardown against a real daemon: nodes of two platforms converge (and
are removed) at the same time."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

CONFIG = textwrap.dedent(
    """
    provisioner:
      name: shell
      inline:
        - date +%s.%N > /var/log/converge-start
        - sleep 8  # long enough to overlap even when one node boots slowly
        - date +%s.%N > /var/log/converge-end
    """
)
SPEC = textwrap.dedent(
    """
    from pathlib import Path

    def test_times(host, infra_platform):
        start = host.file("/var/log/converge-start").content_string.strip()
        end = host.file("/var/log/converge-end").content_string.strip()
        (Path(__file__).parent / f"times-{infra_platform.name}.txt").write_text(f"{start} {end}")
    """
)


def _intervals(path: Path) -> list[tuple[float, float]]:
    found = []
    for name in ("debian-12", "debian-13"):
        start, end = (path / f"times-{name}.txt").read_text().split()
        found.append((float(start), float(end)))
    return found


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_two_platforms_converge_at_once(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=CONFIG)
    pytester.makepyfile(test_spec=SPEC)
    run = infra_run("--infra-platform=debian-12,debian-13", "--infra-parallel=2")
    run.result.assert_outcomes(passed=2)
    first, second = _intervals(pytester.path)
    assert _overlap(first, second), (first, second)


def test_parallel_one_makes_them_one_after_another(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(".yaml", infranode=CONFIG)
    pytester.makepyfile(test_spec=SPEC)
    run = infra_run("--infra-platform=debian-12,debian-13", "--infra-parallel=1")
    run.result.assert_outcomes(passed=2)
    first, second = _intervals(pytester.path)
    assert not _overlap(first, second), (first, second)


def test_a_failing_node_fails_only_its_platform(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode="""
        provisioner:
          name: shell
          inline:
            - grep -q bookworm /etc/os-release || exit 7
        """,
    )
    pytester.makepyfile(test_spec="def test_up(host):\n    assert host.run('true').rc == 0\n")
    run = infra_run("-v", "--infra-platform=debian-12,debian-13", "--infra-parallel=2")
    run.result.assert_outcomes(passed=1, errors=1)
    run.result.stdout.fnmatch_lines(["*test_up[[]debian-12[]] PASSED*", "*ERROR*test_up[[]debian-13[]]*"])


REMOVAL_HOOK = textwrap.dedent(
    """
    import time
    from pathlib import Path

    def pytest_infranode_before_remove(node):
        start = time.time()
        time.sleep(1.5)  # a plugin collecting artefacts: long enough to overlap with the other
        Path(__file__).parent.joinpath(f"removed-{node.platform.name}.txt").write_text(
            f"{start} {time.time()} {node.state}"
        )
    """
)


def _removals(path: Path) -> list[tuple[float, float]]:
    found = []
    for name in ("debian-12", "debian-13"):
        start, end, state = (path / f"removed-{name}.txt").read_text().split()
        assert state == "converged", state  # the hook ran before the node went
        found.append((float(start), float(end)))
    return found


@pytest.mark.parametrize(("parallel", "side_by_side"), [(2, True), (1, False)])
def test_teardown_removes_nodes_side_by_side(
    pytester: pytest.Pytester, infra_run: Run, parallel: int, side_by_side: bool
) -> None:
    pytester.makefile(".yaml", infranode='provisioner:\n  name: shell\n  inline: ["true"]\n')
    pytester.makeconftest(REMOVAL_HOOK)
    pytester.makepyfile(test_spec="def test_up(host):\n    assert host.run('true').rc == 0\n")
    run = infra_run("--infra-platform=debian-12,debian-13", f"--infra-parallel={parallel}")
    run.result.assert_outcomes(passed=2)
    for name in ("debian-12", "debian-13"):  # in the order they were made: either
        run.result.stdout.fnmatch_lines([f"{name} *removed"])
    first, second = _removals(pytester.path)
    assert _overlap(first, second) is side_by_side, (first, second)


# A node goes once the last test that uses its platform has run, not at the session's end.
GONE_SPEC = textwrap.dedent(
    """
    import time

    import docker

    def _exists(name):
        client = docker.from_env()
        try:
            return bool(client.containers.list(all=True, filters={"name": f"^/{name}$"}))
        finally:
            client.close()

    def test_one(infra_node):
        assert infra_node.run("true").exit_status == 0

    def test_two(infra_node, infra_platform):
        if infra_platform.name != "debian-13":
            return
        earlier = infra_node.name.replace("debian-13", "debian-12")
        deadline = time.monotonic() + 60
        while _exists(earlier) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _exists(earlier), f"{earlier} is still there"
        assert _exists(infra_node.name)
    """
)


@pytest.mark.parametrize("parallel", [2, 1])
def test_a_platforms_nodes_go_after_its_last_test(
    pytester: pytest.Pytester, infra_run: Run, parallel: int
) -> None:
    pytester.makefile(".yaml", infranode='provisioner:\n  name: shell\n  inline: ["true"]\n')
    pytester.makepyfile(test_spec=GONE_SPEC)
    run = infra_run("-v", "--infra-platform=debian-12,debian-13", f"--infra-parallel={parallel}")
    run.result.assert_outcomes(passed=4)
    run.result.stdout.fnmatch_lines(["*test_two[[]debian-13[]] PASSED*"])
    for name in ("debian-12", "debian-13"):
        run.result.stdout.fnmatch_lines([f"{name} *removed"])


def test_session_fixtures_of_a_platform_end_before_its_nodes_go(
    pytester: pytest.Pytester, infra_run: Run
) -> None:
    pytester.makefile(".yaml", infranode='provisioner:\n  name: shell\n  inline: ["true"]\n')
    pytester.makeconftest(
        """
        from pathlib import Path

        import pytest

        @pytest.fixture(scope="session")
        def app(infra_node):
            yield infra_node
            # a user's teardown that still needs the node
            result = infra_node.run("echo bye")
            Path(__file__).parent.joinpath(f"bye-{infra_node.platform.name}.txt").write_text(
                f"{result.exit_status} {result.stdout.decode().strip()}"
            )
        """
    )
    pytester.makepyfile(test_spec="def test_up(app):\n    assert app.run('true').exit_status == 0\n")
    run = infra_run("--infra-platform=debian-12,debian-13", "--infra-parallel=2")
    run.result.assert_outcomes(passed=2)
    for name in ("debian-12", "debian-13"):
        assert (pytester.path / f"bye-{name}.txt").read_text() == "0 bye"


def test_a_platform_used_again_later_keeps_its_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    """Tests put out of platform order (debian-12, debian-13, debian-12 again): the first node
    must serve the third test, not be removed when the second starts."""
    pytester.makefile(".yaml", infranode='provisioner:\n  name: shell\n  inline: ["true"]\n')
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(trylast=True)  # after pytest grouped the tests by platform
        def pytest_collection_modifyitems(items):
            order = ["test_a[debian-12]", "test_a[debian-13]", "test_b[debian-12]", "test_b[debian-13]"]
            items.sort(key=lambda item: order.index(item.name))
        """
    )
    pytester.makepyfile(
        test_spec="""
        from pathlib import Path

        def _note(infra_node, name):
            Path(__file__).parent.joinpath(f"{name}-{infra_node.platform.name}.txt").write_text(
                infra_node.container_id
            )

        def test_a(infra_node):
            _note(infra_node, "a")

        def test_b(infra_node):
            _note(infra_node, "b")
        """
    )
    run = infra_run("-v", "--infra-platform=debian-12,debian-13", "--infra-parallel=2")
    run.result.assert_outcomes(passed=4)
    order = [f"*test_{t}[[]debian-{n}[]]*" for t, n in (("a", 12), ("a", 13), ("b", 12), ("b", 13))]
    run.result.stdout.fnmatch_lines(order)
    for name in ("debian-12", "debian-13"):
        assert (pytester.path / f"a-{name}.txt").read_text() == (pytester.path / f"b-{name}.txt").read_text()


def test_a_kept_node_is_not_removed_after_its_last_test(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    pytester.makefile(".yaml", infranode='provisioner:\n  name: shell\n  inline: ["true"]\n')
    pytester.makepyfile(
        test_spec="""
        import time

        import docker

        def test_up(infra_node, infra_platform):
            assert infra_platform.name != "debian-12", "fails: debian-12's node is kept"
            client = docker.from_env()
            earlier = infra_node.name.replace("debian-13", "debian-12")
            try:
                for _ in range(15):  # long enough for a removal to show
                    assert client.containers.list(all=True, filters={"name": f"^/{earlier}$"})
                    time.sleep(0.2)
            finally:
                client.close()
        """
    )
    run = infra_run("--infra-platform=debian-12,debian-13", "--infra-keep=failure", allow_kept=True)
    run.result.assert_outcomes(passed=1, failed=1)
    run.result.stdout.fnmatch_lines(["*kept infranode-*-debian-12*"])
    left = engine.list_containers([f"{labels.SESSION}={run.session_id}"])
    for c in left:
        engine.remove_container(c.id)
    assert len(left) == 1, [c.name for c in left]
