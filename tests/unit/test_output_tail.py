"""Converge output is bounded in memory: OutputTail, ChangeList, file_tail, and the sinks that
hold output back (secrets masking, live echo) never hold more than a line's bound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from pytest_infranode.converge import not_idempotent
from pytest_infranode.node import Node
from pytest_infranode.progress import ConvergeProgress
from pytest_infranode.progress import LineEcho
from pytest_infranode.provisioners import chef
from pytest_infranode.provisioners import puppet
from pytest_infranode.provisioners import pyinfra
from pytest_infranode.provisioners import salt
from pytest_infranode.provisioners.base import LINE_MAX
from pytest_infranode.provisioners.base import MASK
from pytest_infranode.provisioners.base import MAX_CHANGE_CHARS
from pytest_infranode.provisioners.base import ChangeList
from pytest_infranode.provisioners.base import ConvergeResult
from pytest_infranode.provisioners.base import MaskingSink
from pytest_infranode.provisioners.base import OutputTail
from pytest_infranode.provisioners.base import file_tail
from pytest_infranode.provisioners.shell import ShellProvisioner
from tests.unit.test_shell_provisioner import FakeNode
from tests.unit.test_shell_provisioner import config


def test_the_tail_passes_everything_on_and_keeps_only_the_end() -> None:
    passed: list[bytes] = []
    tail = OutputTail(passed.append, max_bytes=100)
    for i in range(1000):
        tail(f"line {i:04d}\n".encode())
    assert b"".join(passed) == b"".join(f"line {i:04d}\n".encode() for i in range(1000))
    assert tail.total == 10_000
    assert tail.dropped == 9_900
    # the kept end starts at a whole line
    assert tail.text.splitlines()[0] == "line 0991"
    assert tail.text.splitlines()[-1] == "line 0999"
    result = tail.result(3, reason="why")
    assert (result.exit_status, result.reason, result.dropped) == (3, "why", 9_900)
    assert result.tail(2) == "line 0998\nline 0999"


def test_a_chunk_larger_than_the_bound_keeps_its_end() -> None:
    tail = OutputTail(max_bytes=10)
    tail(b"abc\n")
    tail(b"x" * 50 + b"\nlast\n")
    assert tail.dropped == 4 + 56 - 10
    assert tail.text == "last\n"


def test_nothing_is_dropped_for_normal_sizes() -> None:
    tail = OutputTail()
    tail(b"one\ntwo\n")
    assert (tail.text, tail.dropped) == ("one\ntwo\n", 0)


def test_lines_are_read_as_they_come_and_cut_at_the_line_bound() -> None:
    lines: list[str] = []
    tail = OutputTail(on_line=lines.append, max_bytes=8)
    tail(b"first li")
    tail(b"ne\r\nsecond\n")
    tail(b"y" * (3 * LINE_MAX))
    tail(b"y\nend")
    assert lines[:2] == ["first line", "second"]
    assert lines[2] == "y" * LINE_MAX  # a line without end is cut, not held without bound
    tail.result(0)
    assert lines[3:] == ["end"]


def test_converge_result_keeps_only_the_end_of_a_long_text() -> None:
    result = ConvergeResult(1, "a" * 100 + "b" * (64 * 1024))
    assert result.output == "b" * (64 * 1024)
    assert result.dropped == 100


def test_change_list_keeps_the_first_and_counts_the_rest() -> None:
    changes = ChangeList(max_changes=2)
    changes.extend(["one", "two", "three", "four"])
    assert list(changes) == ["one", "two"]
    assert (len(changes), changes.more, bool(changes)) == (4, 2, True)
    assert not ChangeList()
    result = OutputTail().result(0, changed=True, changes=changes)
    assert (result.changes, result.more_changes) == (("one", "two"), 2)
    long = ChangeList()
    long.add("d" * (MAX_CHANGE_CHARS + 5))
    assert next(iter(long)).endswith("… (5 more characters: see the log)")


def test_file_tail_reads_the_end_of_a_large_file_only(tmp_path: Path) -> None:
    log = tmp_path / "x.converge.log"
    with open(log, "wb") as f:
        for i in range(200_000):
            f.write(f"{i:099d}\n".encode())
    tail = file_tail(log, 3, max_bytes=1000)
    assert tail.splitlines() == [f"{i:099d}" for i in (199_997, 199_998, 199_999)]
    assert file_tail(tmp_path / "missing", 3) == ""
    (tmp_path / "short").write_text("a\nb\n")
    assert file_tail(tmp_path / "short", 5) == "a\nb"


def test_masking_holds_back_no_more_than_a_line_bound_and_still_masks() -> None:
    passed: list[bytes] = []
    sink = MaskingSink(passed.append, ["s3cret-value"])
    sink(b"x" * (2 * LINE_MAX))  # no newline: not held back without bound
    assert sum(map(len, passed)) >= LINE_MAX
    sink(b"s3cret")  # a secret cut across chunks, with no newline anywhere
    sink(b"-value" + b"y" * (2 * LINE_MAX))
    sink.flush()
    whole = b"".join(passed)
    assert b"s3cret" not in whole
    assert whole == b"x" * (2 * LINE_MAX) + MASK + b"y" * (2 * LINE_MAX)


def test_masking_cut_never_splits_a_secret() -> None:
    for at in range(LINE_MAX - 20, LINE_MAX + 20):
        passed: list[bytes] = []
        sink = MaskingSink(passed.append, ["abcdefghij", "ghijk"])
        data = b"." * at + b"abcdefghijk" + b"." * 30
        for i in range(0, len(data), 7919):
            sink(data[i : i + 7919])
        sink.flush()
        assert b"".join(passed) == b"." * at + MASK + b"k" + b"." * 30


def test_live_echo_shows_a_line_without_end_in_pieces() -> None:
    shown: list[str] = []
    echo = LineEcho(shown.append)
    echo(b"z" * (LINE_MAX * 2 + 3))
    assert shown == ["z" * LINE_MAX, "z" * LINE_MAX]
    echo.flush()
    assert shown[-1] == "zzz"


def test_progress_reads_a_large_log_a_chunk_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "n.converge.log"
    log.write_bytes(b"")
    progress = ConvergeProgress(lambda _: None, "n", tty=False, log=log)
    log.write_bytes(b"$ step one\n" + b"w" * (3 * 1024 * 1024) + b"\n$ step two\nlast")
    progress._read_log()
    assert progress.step == "$ step two"
    assert len(progress._pending) <= LINE_MAX


def test_the_shell_result_holds_the_end_of_a_long_output(tmp_path: Path) -> None:
    big = b"".join(f"{i:09d}\n".encode() for i in range(100_000))  # 1 MB
    node = FakeNode(results=[(0, big), (4, b"the end\n")])
    streamed: list[bytes] = []
    result = ShellProvisioner().converge(
        cast(Node, node), config(tmp_path, inline=["a", "b"]), streamed.append
    )
    assert b"".join(streamed).count(b"\n") == 100_000 + 3  # the log gets everything
    assert result.exit_status == 4
    assert len(result.output) <= 64 * 1024
    assert result.dropped > 900_000
    assert result.tail(2) == "$ /bin/sh -c b\nthe end"


def test_streamed_readers_find_the_same_changes_as_the_whole_text() -> None:
    text = (
        "Notice: /Stage[main]/Web/Package[nginx]/ensure: created\n"
        "Notice: Applied catalog in 1.0 seconds\n"
        "Notice: /Stage[main]/Web/File[/srv/www/index.html]/content: content changed\n"
    )
    changes = ChangeList()

    def read(line: str) -> None:
        change = puppet.changed_resource(line)
        if change is not None:
            changes.add(change)

    tail = OutputTail(on_line=read)
    for i in range(0, len(text), 7):
        tail(text[i : i + 7].encode())
    tail.flush()
    assert list(changes) == puppet.changed_resources(text)
    assert len(changes) == 2
    chef_text = (
        "  * apt_package[nginx] action install\n    - install version 1.22 of package nginx\n"
        "  * service[nginx] action start (up to date)\nCinc Client finished, 1/2 resources updated\n"
    )
    reader = chef.ChefChanges()
    for line in chef_text.splitlines():
        reader.feed(line)
    reader.done()
    assert (reader.updated, list(reader.changes)) == chef.changed_resources(chef_text)
    assert reader.updated == 1
    assert list(reader.changes) == [
        "changed: apt_package[nginx] action install\n  - install version 1.22 of package nginx"
    ]


PYINFRA_TABLE = """--> Results:
    Operation       Hosts   Success   Error   No Change
    Home page       1       1         -       -
    Packages        1       -         -       1
    Grand total     1       1         -       1
"""


def test_pyinfra_results_are_read_a_line_at_a_time_and_the_last_table_counts() -> None:
    table = pyinfra.ResultsTable()
    for line in (
        "--> Results:\n    Operation  Hosts  Success  Error  No Change\n    Old  1  1  -  -\n" + PYINFRA_TABLE
    ).splitlines():
        table.feed(line)
    assert (list(table.changes), table.errors) == (["changed: Home page"], 0)


def salt_tail(data: object, noise: str = "") -> OutputTail:
    tail = OutputTail(max_bytes=salt.RESULT_BYTES)
    tail(f"{noise}[WARNING] a log line with {{braces}}\n{json.dumps(data, indent=4)}\n".encode())
    return tail


def test_salt_reason_is_salt_own_words() -> None:
    no_top = {
        "local": {
            "no_|-states_|-states_|-None": {
                "result": False,
                "comment": "No Top file or master_tops data matches found. Please see master log for "
                "details.",
                "name": "No States",
                "changes": {},
                "__run_num__": 0,
            }
        }
    }
    result = salt.read_answer(salt_tail(no_top), 2)
    assert result.reason == (
        "Salt said: No Top file or master_tops data matches found. Please see master log for details."
    )
    assert result.changed is False
    render = {"local": ["Rendering SLS 'base:web' failed: could not find expected ':'"]}
    assert salt.read_answer(salt_tail(render), 1).reason == (
        "Salt said: Rendering SLS 'base:web' failed: could not find expected ':'"
    )
    started = OutputTail()
    started(b"Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'crypt'\n")
    assert (
        salt.read_answer(started, 1).reason == "salt-call said: ModuleNotFoundError: No module named 'crypt'"
    )
    assert salt.read_answer(salt_tail(no_top), 0).reason == ""
    failed = {
        "local": {
            "pkg_|-web_|-nginx_|-installed": {
                "result": False,
                "comment": "No such package",
                "__run_num__": 1,
            },
            "file_|-x_|-/x_|-managed": {"result": False, "comment": "later", "__run_num__": 2},
        }
    }
    assert salt.read_answer(salt_tail(failed), 1).reason == (
        "Salt state web (pkg) failed: No such package (and 1 more failed state(s))"
    )


def test_salt_changes_stay_right_after_much_log_output_and_say_so_when_unreadable() -> None:
    changed = {
        "local": {"file_|-i_|-/i_|-managed": {"__id__": "i", "changes": {"diff": "+b"}, "result": True}}
    }
    noisy = salt_tail(changed, noise="[INFO] busy\n" * 100_000)
    assert noisy.dropped == 0
    result = salt.read_answer(noisy, 0)
    assert result.changed is True
    assert result.changes[0].startswith("changed: i (file)")
    tail = OutputTail(max_bytes=64)
    tail(b"{" + b'"local": {"x": ' * 100)
    unreadable = salt.read_answer(tail, 0)
    assert unreadable.changed is None
    assert "its JSON answer is not within the last" in unreadable.changes[0]


def test_the_idempotence_error_counts_the_changes_it_does_not_show() -> None:
    changes = ChangeList(max_changes=2)
    changes.extend(f"changed: task {i}" for i in range(5))
    result = OutputTail().result(0, changed=True, changes=changes)
    err = not_idempotent("web is not idempotent: the second converge with ansible", result, [], "node web")
    assert "changed 5 thing(s)" in str(err)
    assert err.detail.splitlines()[1:] == [
        "changed: task 0",
        "changed: task 1",
        "… and 3 more change(s): see the converge log",
    ]
