"""Live converge progress: the step a tool announces, the line shown, and how often it is shown."""

from __future__ import annotations

from pathlib import Path

from pytest_infranode.progress import LOG_INTERVAL
from pytest_infranode.progress import TTY_INTERVAL
from pytest_infranode.progress import ConvergeProgress
from pytest_infranode.progress import Throttle
from pytest_infranode.progress import progress_line
from pytest_infranode.progress import step_of
from pytest_infranode.provisioners.ansible import AnsibleProvisioner

ANSIBLE = AnsibleProvisioner()


def test_step_of_reads_the_line_without_colours_with_the_provisioners_reader() -> None:
    seen: list[str] = []

    def read(line: str) -> str | None:
        seen.append(line)
        return line.upper() if line.startswith("step") else None

    assert step_of("\x1b[0;33mstep one\x1b[0m   ", read) == "STEP ONE"
    assert step_of("other", read) is None
    assert seen == ["step one", "other"]


def test_without_a_reader_only_command_headers_are_steps() -> None:
    assert step_of("$ /opt/infranode-salt/bin/salt-call --local state.apply") == (
        "$ /opt/infranode-salt/bin/salt-call --local state.apply"
    )
    assert step_of("TASK [web : x] ***") is None
    assert step_of("$ ") is None


def test_progress_line_names_node_elapsed_and_step() -> None:
    assert (
        progress_line("debian-12", 35.4, "TASK [web : x]") == "debian-12: converging (35 s): TASK [web : x]"
    )
    assert progress_line("web", 5, "") == "web: converging (5 s)"


def test_progress_line_cuts_a_long_step_and_flattens_whitespace() -> None:
    line = progress_line("debian-12", 10, "a\tb   " + "x" * 500, width=60)
    assert len(line) == 60
    assert line.startswith("debian-12: converging (10 s): a b x")
    assert line.endswith("…")


def test_throttle_first_line_after_one_interval_then_every_interval() -> None:
    throttle = Throttle(started=100.0, interval=5.0)
    assert not throttle.due(100.0)
    assert not throttle.due(104.9)
    assert throttle.due(105.0)
    assert not throttle.due(106.0)
    assert throttle.due(110.2)


def test_throttle_catches_up_after_a_stall_without_a_burst() -> None:
    throttle = Throttle(started=0.0, interval=5.0)
    assert throttle.due(31.0)
    assert not throttle.due(32.0)
    assert throttle.due(35.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tty_gets_a_line_every_5_s_and_a_log_every_15_s() -> None:
    assert (TTY_INTERVAL, LOG_INTERVAL) == (5.0, 15.0)
    for tty, interval in ((True, TTY_INTERVAL), (False, LOG_INTERVAL)):
        clock = Clock()
        progress = ConvergeProgress(lambda _line: None, "n", tty=tty, clock=clock)
        shown = []
        for _ in range(60):  # one minute, polled every second
            clock.now += 1
            line = progress.tick(clock.now)
            if line is not None:
                shown.append(line)
        assert len(shown) == 60 // interval
        assert shown[0] == f"n: converging ({interval:.0f} s)"


def test_the_step_is_the_last_announced_one_else_the_last_line() -> None:
    progress = ConvergeProgress(lambda _line: None, "n", tty=True, steps=ANSIBLE.step_of, clock=Clock())
    progress.feed(b"Reading package lists...\nBuilding depen")
    assert progress.step == "Reading package lists..."
    progress.feed(b"dency tree\n\n")
    assert progress.step == "Building dependency tree"
    progress.feed(b"TASK [web : Install] ***\nok: [debian-12]\n")
    assert progress.step == "TASK [web : Install]"


def test_the_thread_reads_what_the_converge_appends_to_its_log(tmp_path: Path) -> None:
    log = tmp_path / "n.converge.log"
    log.write_bytes(b"TASK [first converge] ***\n")
    said: list[str] = []
    clock = Clock()
    progress = ConvergeProgress(said.append, "n", tty=True, log=log, steps=ANSIBLE.step_of, clock=clock)
    with progress:
        with open(log, "ab") as out:
            out.write(b"TASK [web : Install nginx] ***\n")
        clock.now += 6
        for _ in range(50):
            if said:
                break
            progress._stop.wait(0.1)
    assert said == ["n: converging (6 s): TASK [web : Install nginx]"]


def test_report_sections_carry_no_terminal_escapes() -> None:
    from pytest_infranode.progress import without_escapes

    text = (
        "\x1b[0;32mok: [web]\x1b[0m\r\n"  # colours, a CRLF
        "\x1b]0;title\x07TASK [x]\n"  # an OSC window title
        "10%\r50%\r100%\n"  # a redrawn progress line keeps its last state
        "\x1b[2K\x1b[1Gdone\tnow\x07\n"  # erase line, cursor move, a bell; the tab stays
        "\x1bMup"  # a bare escape (reverse index)
    )
    assert without_escapes(text) == "ok: [web]\nTASK [x]\n100%\ndone\tnow\nup"
    assert "\x1b" not in without_escapes(text)
