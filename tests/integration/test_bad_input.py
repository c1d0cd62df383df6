"""The bad-input catalogue (docs/errors.md): each mistake gives a clear message, no traceback,
the exit code a pytest user expects, and leaves nothing behind.

Entries that need no session (settings parsing, doctor rows) are unit-tested in tests/unit; the
ones here run a whole inner pytest session.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import pytest

from pytest_infranode.engine import Engine
from pytest_infranode.errors import NodeError
from pytest_infranode.node import Node
from pytest_infranode.platforms import Catalog
from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

INLINE = "provisioner:\n  name: shell\n  inline: ['true']\n"
SPEC = "def test_a(host):\n    assert host.run('true').rc == 0\n"


@dataclass
class Case:
    files: dict[str, str]
    args: tuple[str, ...]
    exit_code: pytest.ExitCode
    lines: list[str]
    outcomes: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    raw_files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """name → target of a symlink made in the project."""


CASES = {
    "unknown-platform": Case(
        {"infranode.yaml": INLINE},
        ("--infra-platform=debain-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*unknown platform 'debain-12'*", "*did you mean 'debian-12'*"],
    ),
    "empty-platform-option": Case(
        {"infranode.yaml": INLINE},
        ("--infra-platform=",),
        pytest.ExitCode.USAGE_ERROR,
        ["*--infra-platform was given without a platform*"],
    ),
    "malformed-yaml": Case(
        {"infranode.yaml": "provisioner:\n  name: shell\n  inline: [true\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*infranode.yaml is not valid YAML*", "*where: *infranode.yaml:4:1*"],
    ),
    "non-utf8-yaml": Case(
        {},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        [
            "*configuration file infranode.yaml is not UTF-8 text: byte 0xe9 at line 4, column 6*",
            "*where: *infranode.yaml:4:6*",
            "*fix:   save the file as UTF-8*",
        ],
        raw_files={"infranode.yaml": INLINE.encode() + b"# caf\xe9 (latin-1)\n"},
    ),
    "shell-provisioner-without-steps": Case(
        {"infranode.yaml": "provisioner: shell\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        [
            "*shell provisioner: nothing to run*",
            "*infranode.yaml:1*",
            "*for a bare node, remove `provisioner:`*",
        ],
    ),
    "none-provisioner-with-options": Case(
        {"infranode.yaml": "provisioner:\n  name: none\n  script: converge.sh\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*the none provisioner takes no options, but was given script*", "*infranode.yaml:1*"],
    ),
    "unknown-key": Case(
        {"infranode.yaml": INLINE + "keeep: always\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*unknown setting 'keeep'*", "*infranode.yaml:4*", "*did you mean 'keep'*"],
    ),
    "wrong-type": Case(
        {"infranode.yaml": INLINE + "boot_timeout: soon\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*boot timeout must be a positive number of seconds, not 'soon'*", "*infranode.yaml:4*"],
    ),
    "yaml-not-a-mapping": Case(
        {"infranode.yaml": "- shell\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*must be a mapping of settings, not a list*"],
    ),
    "unknown-provisioner": Case(
        {"infranode.yaml": "provisioner: chef-zero-magic\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*unknown provisioner 'chef-zero-magic'*", "*use one of:*shell*"],
    ),
    "unknown-provisioner-option": Case(
        {"infranode.yaml": INLINE + "  scirpt: x.sh\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*unknown option 'scirpt'*", "*did you mean 'script'*"],
    ),
    "missing-script": Case(
        {"infranode.yaml": "provisioner:\n  name: shell\n  script: converge.sh\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*script 'converge.sh' does not exist*", "*looked at *converge.sh*"],
    ),
    "script-symlink-leaves-the-project": Case(
        {"infranode.yaml": "provisioner:\n  name: shell\n  script: converge.sh\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        [
            "*shell provisioner: script 'converge.sh' is outside the project: *converge.sh "
            "(which leads to /etc/shadow) is not under *",
            "*where: *infranode.yaml:3 (provisioner.script)*",
            "*set `allow_outside_project: true`*",
        ],
        links={"converge.sh": "/etc/shadow"},
    ),
    "missing-config-file": Case(
        {},
        ("--infra-platform=debian-12", "--infra-config=nowhere.yaml"),
        pytest.ExitCode.USAGE_ERROR,
        ["*configuration file 'nowhere.yaml' does not exist*"],
    ),
    "bad-keep-value": Case(
        {"infranode.yaml": INLINE},
        ("--infra-platform=debian-12", "--infra-keep=sometimes"),
        pytest.ExitCode.USAGE_ERROR,
        ["*--infra-keep*invalid choice: 'sometimes'*"],
    ),
    "bad-timeout-value": Case(
        {"infranode.yaml": INLINE},
        ("--infra-platform=debian-12", "--infra-boot-timeout=-5"),
        pytest.ExitCode.USAGE_ERROR,
        ["*boot timeout must be a positive number*"],
    ),
    "secret-env-unset": Case(
        {"infranode.yaml": INLINE + "  secret_env: [INFRANODE_UNSET_SECRET]\n"},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*secret_env names INFRANODE_UNSET_SECRET, not set in the environment*"],
    ),
    "daemon-down": Case(
        {"infranode.yaml": INLINE},
        ("--infra-platform=debian-12", "--infra-docker-host=unix:///tmp/infranode-no-such.sock"),
        pytest.ExitCode.USAGE_ERROR,
        ["*cannot use the Docker daemon*", "*infranode-no-such.sock*"],
    ),
    "tls-files-missing": Case(
        {"infranode.yaml": INLINE},
        ("--infra-platform=debian-12",),
        pytest.ExitCode.USAGE_ERROR,
        ["*cannot use the Docker daemon*", "*TLS*"],
        env={
            "DOCKER_HOST": "tcp://127.0.0.1:2376",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": "/nonexistent-certs",
        },
    ),
    "node-without-platform": Case(
        {"infranode.yaml": INLINE, "test_n.py": "def test_a(infra_node):\n    pass\n"},
        (),
        pytest.ExitCode.TESTS_FAILED,
        ["*no platform given: run with --infra-platform=debian-12*"],
        outcomes={"errors": 1},
    ),
    "colliding-names": Case(
        {
            "infranode.yaml": INLINE
            + "platform_definitions:\n  debian-12-x: {base: debian-12}\nnodes:\n  x-y: {}\n  y: {}\n",
            "test_c.py": "import pytest\n\n@pytest.mark.infra_node('x-y', 'y')\n"
            "def test_a(host):\n    assert host.run('true').rc == 0\n",
        },
        ("--infra-platform=debian-12,debian-12-x",),
        pytest.ExitCode.USAGE_ERROR,
        [
            "*platform 'debian-12' node 'x-y' and platform 'debian-12-x' node 'y' would have one name:*"
            "infranode-<session>-debian-12-x-y*",
            "*where: node 'x-y' at *infranode.yaml:7 (nodes.x-y); node 'y' at *infranode.yaml:8 (nodes.y)*",
            "*fix:   rename one of the two nodes in `nodes:`*",
        ],
    ),
    "marker-typo": Case(
        {
            "infranode.yaml": INLINE,
            "test_m.py": "import pytest\n\n@pytest.mark.infra_platforms('debain-12')\n"
            "def test_a(host):\n    pass\n",
        },
        ("--infra-platform=debian-12",),
        pytest.ExitCode.INTERRUPTED,
        ["*unknown platform or family 'debain-12'*", "*did you mean 'debian-12'*"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(
    name: str, pytester: pytest.Pytester, infra_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    for filename, content in case.files.items():
        (pytester.path / filename).write_text(content)
    for filename, data in case.raw_files.items():
        (pytester.path / filename).write_bytes(data)
    for filename, target in case.links.items():
        (pytester.path / filename).symlink_to(target)
    if not any(f.startswith("test_") for f in case.files):
        pytester.makepyfile(SPEC)
    run = infra_run(*case.args)
    output = run.result.stdout.str() + run.result.stderr.str()
    assert run.result.ret == case.exit_code, output
    for pattern in case.lines:
        assert any(fnmatch.fnmatch(line, pattern) for line in output.splitlines()), (
            f"{pattern!r} not in:\n{output}"
        )
    assert "Traceback" not in output
    if case.outcomes:
        run.result.assert_outcomes(**case.outcomes)


def test_image_that_cannot_be_pulled(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makeconftest(
        """
        import dataclasses
        from pytest_infranode import hookimpl
        from pytest_infranode.platforms import BUILTIN_PLATFORMS

        @hookimpl
        def pytest_infranode_add_platforms():
            base = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")
            return [dataclasses.replace(
                base, name="nowhere-1", image="infranode-test/nowhere:1",
                aliases=(), bootstrap=None, dockerfile="",
            )]
        """
    )
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(SPEC)
    run = infra_run("--infra-platform=nowhere-1")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        ["*image infranode-test/nowhere:1 is not on the daemon and could not be pulled*", "*fix:*"]
    )
    assert "Traceback" not in run.result.stdout.str()


def test_hostile_values_never_reach_a_shell(pytester: pytest.Pytester, infra_run: Run) -> None:
    script = pytester.path / "my converge script.sh"
    script.write_text('echo "$GREETING" > /etc/greeting\n')  # no shebang, not executable
    os.chmod(script, stat.S_IRUSR | stat.S_IWUSR)
    pytester.makefile(
        ".yaml",
        infranode=textwrap.dedent(
            """
            provisioner:
              name: shell
              script: my converge script.sh
              env:
                GREETING: "$(touch /tmp/pwned) `touch /tmp/pwned2` 'quoted' \\"double\\""
            """
        ),
    )
    pytester.makepyfile(
        """
        def test_env_is_data(host):
            assert not host.file("/tmp/pwned").exists
            assert not host.file("/tmp/pwned2").exists
            assert "$(touch /tmp/pwned)" in host.file("/etc/greeting").content_string
        """
    )
    infra_run("--infra-platform=debian-12").result.assert_outcomes(passed=1)


def test_hostile_platform_name_is_refused(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makeconftest(
        """
        import dataclasses
        from pytest_infranode import hookimpl
        from pytest_infranode.platforms import BUILTIN_PLATFORMS

        @hookimpl
        def pytest_infranode_add_platforms():
            base = BUILTIN_PLATFORMS[1]
            return [dataclasses.replace(base, name="x $(reboot)", aliases=())]
        """
    )
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(SPEC)
    run = infra_run("--infra-platform=debian-12")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*platform name 'x $(reboot)'*is not allowed*"])


def test_colliding_platform_names_are_refused(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makeconftest(
        """
        import dataclasses
        from pytest_infranode import hookimpl
        from pytest_infranode.platforms import BUILTIN_PLATFORMS

        @hookimpl
        def pytest_infranode_add_platforms():
            return [dataclasses.replace(BUILTIN_PLATFORMS[1], aliases=())]
        """
    )
    pytester.makefile(".yaml", infranode=INLINE)
    pytester.makepyfile(SPEC)
    run = infra_run("--infra-platform=debian-12")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*platform name 'debian-12'*is already taken*"])


def test_exec_on_a_removed_node(engine: Engine) -> None:
    platform = Catalog().get("debian-12")
    node = Node(engine, platform, session_id="badinput0000001", image="debian:12")
    try:
        node.create(
            {
                "image": "debian:12",
                "name": node.name,
                "command": ["sleep", "300"],
                "labels": dict(node.labels),
                "detach": True,
            }
        )
        engine.start_container(node.container_id)
        assert node.run("echo alive").stdout == b"alive\n"
        engine.remove_container(node.container_id)
        with pytest.raises(NodeError) as excinfo:
            node.run("true")
        assert "the container is gone" in str(excinfo.value)
        assert node.name in str(excinfo.value) or node.container_id[:12] in str(excinfo.value)
    finally:
        node.remove()


@pytest.mark.parametrize("fixture", ["host", "infra_node", "infra_nodes"])
def test_a_converge_error_is_shown_once(pytester: pytest.Pytester, infra_run: Run, fixture: str) -> None:
    """The fixture fails outside `except`: no "During handling of the above exception" repeat."""
    pytester.makefile(
        ".yaml", infranode="provisioner:\n  name: shell\n  inline: ['echo said-once >&2; exit 3']\n"
    )
    pytester.makepyfile(f"def test_a({fixture}):\n    pass\n")
    run = infra_run("--infra-platform=debian-12", "-rN")  # -rN: no short summary, which repeats line 1
    run.result.assert_outcomes(errors=1)
    out = run.result.stdout.str()
    assert "exited with status 3" in out, out
    assert out.count("--- last lines of the converge output ---") == 1, out
    assert "During handling of the above exception" not in out, out


def test_a_user_that_does_not_exist_in_the_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml", infranode="provisioner:\n  name: shell\n  inline: [whoami]\n  user: nosuchuser\n"
    )
    pytester.makepyfile(SPEC)
    run = infra_run("--infra-platform=debian-12", "-rN")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        [
            "*the shell provisioner exited with status 126: user 'nosuchuser' does not exist in the node*",
            "*infranode: user 'nosuchuser' does not exist in the node*",  # the tail says it too
        ]
    )
    assert "Traceback" not in run.result.stdout.str()


def test_an_ansible_user_that_does_not_exist_in_the_node(pytester: pytest.Pytester, infra_run: Run) -> None:
    """Ansible says "Failed to create temporary directory" (Docker's `unable to find user` deep in
    the command line it shows); the first line names the user, the node, `user:` and the fix."""
    pytester.makefile(
        ".yaml", infranode="provisioner:\n  name: ansible\n  playbook: site.yml\n  user: nosuchuser\n"
    )
    pytester.makefile(
        ".yml", site="- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    )
    pytester.makepyfile(SPEC)
    run = infra_run("--infra-platform=debian-12", "-rN")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        [
            "*the ansible provisioner exited with status 4: user 'nosuchuser' does not exist in node "
            "infranode-*-debian-12 (it has no passwd entry), so Ansible cannot run as it (`user:` at "
            "*infranode.yaml:4 (provisioner.user)); create it in the `prepare:` playbook*",
            "*infranode: user 'nosuchuser' does not exist in node*",  # the tail says it too
        ]
    )
    assert "Traceback" not in run.result.stdout.str()


def test_report_sections_carry_no_terminal_escapes(pytester: pytest.Pytester, infra_run: Run) -> None:
    pytester.makefile(
        ".yaml",
        infranode=r"""
        provisioner:
          name: shell
          inline:
            - printf '\033[31mred-marker\033[0m\n'
        """,
    )
    pytester.makepyfile("def test_fails(infra_node):\n    assert False\n")
    run = infra_run("--infra-platform=debian-12", "--color=no")
    run.result.assert_outcomes(failed=1)
    out = run.result.stdout.str()
    run.result.stdout.fnmatch_lines(["*infranode converge log of *(tail)*", "red-marker"])
    assert "\x1b" not in out, repr(out)
