"""benchmarks/cold_start.py: how a build's log is split into its phases. Pure."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

from pytest_infranode.platforms import Catalog


def _load() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "cold_start.py"
    spec = importlib.util.spec_from_file_location("cold_start_bench", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load()
STEPS = ("apt-get update", "DEBIAN_FRONTEND=noninteractive apt-get install -y x", "apt-get clean")


def test_every_step_of_the_shipped_apt_recipe_has_a_kind() -> None:
    kinds = [bench.step_kind(step) for step in Catalog().get("debian-12").prepare]
    assert kinds == ["package index update", "package install", "cleanup", "systemd unit masking"]
    assert bench.step_kind("echo hello") == "echo hello"


def test_the_candidate_adds_its_option_to_each_apt_install_only() -> None:
    shipped = Catalog().get("debian-12").prepare
    changed = bench.candidate(shipped)
    assert [a != b for a, b in zip(shipped, changed, strict=True)] == [False, True, False, False]
    assert "apt-get install -y -o Dpkg::Options::=--force-unsafe-io --no-install-recommends" in changed[1]


def test_markers_surround_each_step_and_the_last_carries_the_token() -> None:
    out = bench.marked(STEPS, "tok-1")
    assert out == (
        "echo @@cold-start 0",
        STEPS[0],
        "echo @@cold-start 1",
        STEPS[1],
        "echo @@cold-start 2",
        STEPS[2],
        "echo @@cold-start 3 tok-1",
    )
    assert bench.marked(STEPS, "tok-2") != out  # a recipe of its own per build


def test_stream_lines_join_split_chunks_and_keep_the_time_of_the_chunk_that_ends_a_line() -> None:
    chunks = [(1.0, "Step 1/2 : FR"), (2.0, "OM x\n ---> ab"), (3.0, "c\r\n(Reading"), (4.0, " ...")]
    assert bench.stream_lines(chunks) == [
        (2.0, "Step 1/2 : FROM x"),
        (3.0, " ---> abc"),
        (4.0, "(Reading ..."),
    ]


def test_stream_lines_drop_the_colours_of_stderr() -> None:
    """The daemon colours a RUN's stderr; the reset may open the next (stdout) line."""
    chunks = [(1.0, "\x1b[91mCreated symlink x.\n\x1b[0m"), (2.0, "@@cold-start 4 tok\n")]
    assert bench.stream_lines(chunks) == [(1.0, "Created symlink x."), (2.0, "@@cold-start 4 tok")]


def _log() -> list[tuple[float, str]]:
    return [
        (10.1, "Step 1/4 : FROM debian:12"),
        (10.1, "Step 2/4 : RUN set -e; echo @@cold-start 0 && apt-get update && echo @@cold-start 1"),
        (10.2, " ---> Running in 123"),
        (10.5, "@@cold-start 0"),
        (11.0, "Fetched 6258 kB in 1s"),  # the update's own: not the install's download
        (12.5, "@@cold-start 1"),
        (14.0, "Fetched 21.6 MB in 1s"),
        (20.0, "Setting up systemd"),
        (22.5, "@@cold-start 2"),
        (22.6, "@@cold-start 3 tok"),
        (26.6, "Removing intermediate container 123"),
        (26.7, "Step 3/4 : ENV container=docker"),
        (27.0, "Removing intermediate container 456"),
        (27.1, "Successfully built 789"),
    ]


def test_phases_split_the_whole_call_and_add_up_to_it() -> None:
    got = bench.phases(_log(), STEPS, "tok", called=10.0, requested=10.05, returned=27.2)
    expected = {
        bench.OURS_BEFORE: 0.05,
        bench.CONTEXT: 0.05,
        bench.CREATE: 0.4,
        "package index update": 2.0,
        bench.DOWNLOAD: 1.5,
        bench.DPKG: 8.5,
        "cleanup": 0.1,
        bench.COMMIT: 4.0,
        bench.METADATA: 0.5,
        bench.OURS_AFTER: 0.1,
        bench.TOTAL: 17.2,
    }
    assert got.keys() == expected.keys()
    for name, seconds in expected.items():
        assert math.isclose(got[name], seconds, abs_tol=1e-9), name
    assert math.isclose(sum(v for k, v in got.items() if k != bench.TOTAL), got[bench.TOTAL])


def test_a_marker_missing_from_the_log_is_an_error_not_a_zero() -> None:
    log = [line for line in _log() if line[1] != "@@cold-start 3 tok"]
    with pytest.raises(ValueError, match="@@cold-start 3 tok"):
        bench.phases(log, STEPS, "tok", called=10.0, requested=10.05, returned=27.2)


def test_the_step_line_that_echoes_a_marker_is_not_the_marker() -> None:
    """The RUN line holds every marker's text; only a line that is the marker counts."""
    log = [line for line in _log() if line[1] != "@@cold-start 0"]
    with pytest.raises(ValueError, match="'@@cold-start 0'"):
        bench.phases(log, STEPS, "tok", called=10.0, requested=10.05, returned=27.2)
