"""--infra-cache=converge against a real daemon: hit on unchanged inputs, miss on each changed one."""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from collections.abc import Callable
from collections.abc import Iterator

import pytest

from pytest_infranode import labels
from pytest_infranode.engine import Engine
from tests.integration.conftest import InfraRun
from tests.integration.conftest import copy_example

Run = Callable[..., InfraRun]

MARKER = "/var/log/infranode-converge-marker"
SPEC = textwrap.dedent(
    f"""
    from pathlib import Path

    def test_converged_once(host):
        lines = host.file("{MARKER}").content_string.splitlines()
        assert len(lines) == 1, lines
        (Path(__file__).parent / "marker.txt").write_text(lines[0])
    """
)
CONVERGE = "#!/bin/sh\nset -eu\n# {token}\ncat /proc/sys/kernel/random/uuid >> " + MARKER + "\n"


@pytest.fixture
def token(engine: Engine) -> Iterator[str]:
    """A token unique to the test; the converged and prepared images it made are removed after."""
    before = {i.id for i in engine.list_images(labels.CONVERGE)}
    value = uuid.uuid4().hex[:10]
    yield value
    platform = f"cachetest-{value}"
    made = [i for i in engine.list_images(labels.CONVERGE) if i.id not in before]
    made += engine.list_images(f"{labels.PLATFORM}={platform}")
    for image in made:
        with contextlib.suppress(Exception):  # already removed as a converged one
            engine.remove_image(image.id)


def _project(pytester: pytest.Pytester, token: str, *, env: str = "a", prepare: str = "one") -> None:
    pytester.makefile(
        ".yaml",
        infranode=textwrap.dedent(
            f"""
            platforms: [cachetest-{token}]
            platform_definitions:
              cachetest-{token}:
                base: debian-12
                init: none
                command: [sleep, infinity]
                prepare: ["echo {prepare} > /etc/cachetest"]
            provisioner:
              name: shell
              script: converge.sh
              env: {{CHOICE: {env}}}
            """
        ),
    )
    (pytester.path / "converge.sh").write_text(CONVERGE.format(token=token))
    pytester.makepyfile(test_spec=SPEC)


def _marker(pytester: pytest.Pytester) -> str:
    return (pytester.path / "marker.txt").read_text()


def test_hit_on_unchanged_inputs(pytester: pytest.Pytester, infra_run: Run, token: str) -> None:
    _project(pytester, token)
    first = infra_run("-v", "--infra-cache=converge")
    first.result.assert_outcomes(passed=1)
    first.result.stdout.fnmatch_lines(["*converge cache miss*(no image with key *)*"])
    converged_by_first = _marker(pytester)

    second = infra_run("-v", "--infra-cache=converge")
    second.result.assert_outcomes(passed=1)
    second.result.stdout.fnmatch_lines(["*converge cache hit*converge skipped*"])
    # The cached node's marker is the first converge's line, and there is only one: not run again.
    assert _marker(pytester) == converged_by_first

    off = infra_run("-v")  # default: off, converges again
    off.result.assert_outcomes(passed=1)
    assert _marker(pytester) != converged_by_first
    off.result.stdout.no_fnmatch_line("*converge cache*")


@pytest.mark.parametrize("change", ["script", "options", "platform"])
def test_miss_on_each_changed_input(
    pytester: pytest.Pytester, infra_run: Run, token: str, change: str
) -> None:
    _project(pytester, token)
    first = infra_run("--infra-cache=converge")
    first.result.assert_outcomes(passed=1)
    converged_by_first = _marker(pytester)
    if change == "script":
        with open(pytester.path / "converge.sh", "a") as script:
            script.write("true\n")
        expected = "file converge.sh"
    elif change == "options":
        _project(pytester, token, env="b")
        expected = "provisioner options"
    else:
        _project(pytester, token, prepare="two")
        expected = "platform image"
    second = infra_run("--infra-cache=converge")
    second.result.assert_outcomes(passed=1)
    second.result.stdout.fnmatch_lines([f"*converge cache miss*changed since the last one: *{expected}*"])
    assert _marker(pytester) != converged_by_first


def test_secret_env_is_never_cached(pytester: pytest.Pytester, infra_run: Run, token: str) -> None:
    _project(pytester, token)
    text = (pytester.path / "infranode.yaml").read_text()
    (pytester.path / "infranode.yaml").write_text(text.rstrip() + "\n  secret_env: [HOME]\n")
    run = infra_run("--infra-cache=converge")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*converge cache not used*secret_env*"])


def test_cached_nginx_passes_the_same_spec(
    pytester: pytest.Pytester, infra_run: Run, token: str, engine: Engine
) -> None:
    copy_example(pytester, "nginx")
    with open(pytester.path / "converge.sh", "a") as script:
        script.write(f"# {token}\n")  # a key of its own
    fresh = infra_run("-v", "--infra-cache=converge")
    fresh.result.assert_outcomes(passed=11)
    fresh.result.stdout.fnmatch_lines(["*converge cache miss*"])
    cached = infra_run("-v", "--infra-cache=converge")
    cached.result.assert_outcomes(passed=11)
    cached.result.stdout.fnmatch_lines(["*converge cache hit*", "*converge cache*", "*hit*"])


def test_images_lists_converged(
    pytester: pytest.Pytester,
    infra_run: Run,
    token: str,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """(`images prune` is unit-tested: here it would remove other projects' stale images.)"""
    from pytest_infranode.cli import main

    _project(pytester, token)
    infra_run("--infra-cache=converge").result.assert_outcomes(passed=1)
    mine = engine.list_images(f"{labels.CONVERGE_SCOPE}=cachetest-{token}//shell")
    assert len(mine) == 1
    assert main(["images"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if f"cachetest-{token}-converged" in line]
    assert len(rows) == 1
    assert "converged" in rows[0].split()[2:], rows
