from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import cast

import pytest

from pytest_infranode.engine.api import ExecResult
from pytest_infranode.engine.api import OutputSink
from pytest_infranode.errors import SettingsError
from pytest_infranode.node import Node
from pytest_infranode.projectfiles import FileRule
from pytest_infranode.provisioners.base import MaskingSink
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.provisioners.shell import REMOTE_DIR
from pytest_infranode.provisioners.shell import ShellProvisioner
from pytest_infranode.provisioners.shell import plan
from pytest_infranode.provisioners.shell import pytest_infranode_add_provisioners
from pytest_infranode.provisioners.shell import script_argv
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import build_settings


def config(tmp_path: Path, **options: object) -> ProvisionerConfig:
    return ProvisionerConfig(name="shell", options=options, base_dir=tmp_path)


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_plan_resolves_scripts_relative_to_base_dir(tmp_path: Path) -> None:
    first = script(tmp_path / "converge.sh", "echo one\n")
    second = script(tmp_path / "sub" / "more.sh", "echo two\n")
    scripts, inline = plan(config(tmp_path, script=["converge.sh", "sub/more.sh"], inline="echo three"))
    assert scripts == [first, second]
    assert inline == ["echo three"]


def test_plan_accepts_absolute_script_inside_the_project(tmp_path: Path) -> None:
    absolute = script(tmp_path / "base" / "scripts" / "x.sh", "true\n")
    scripts, inline = plan(config(tmp_path / "base", script=str(absolute)))
    assert scripts == [absolute]
    assert inline == []


def test_plan_refuses_an_absolute_script_outside_the_project_unless_allowed(tmp_path: Path) -> None:
    absolute = script(tmp_path / "elsewhere" / "x.sh", "true\n")
    with pytest.raises(SettingsError, match="is outside the project"):
        plan(config(tmp_path / "base", script=str(absolute)))
    allowed = dataclasses.replace(
        config(tmp_path / "base", script=str(absolute)), files=FileRule(tmp_path / "base", allow_outside=True)
    )
    assert plan(allowed) == ([absolute], [])


def test_plan_inline_only(tmp_path: Path) -> None:
    scripts, inline = plan(config(tmp_path, inline=["apt-get update", "true"], env={"A": 1}, user="root"))
    assert scripts == []
    assert inline == ["apt-get update", "true"]


def test_plan_missing_script_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        plan(config(tmp_path, script="nope.sh"))
    err = excinfo.value
    assert err.what == "shell provisioner: script 'nope.sh' does not exist"
    assert f"(looked at {tmp_path / 'nope.sh'})" in err.where
    assert str(tmp_path / "nope.sh") in str(err)


def test_plan_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        plan(config(tmp_path, inline="true", scirpt="x.sh"))
    err = excinfo.value
    assert err.what == "shell provisioner: unknown option 'scirpt'"
    assert err.fix == "did you mean 'script'? Options: script, inline, env, secret_env, user"


def test_plan_unknown_option_names_its_line(tmp_path: Path) -> None:
    yaml_file = tmp_path / "infranode.yaml"
    yaml_file.write_text(
        textwrap.dedent(
            """\
            platforms: [debian-12]
            provisioner:
              name: shell
              inline: ['true']
              scripts: [a.sh]
            """
        ),
        encoding="utf-8",
    )
    provisioner = build_settings(RawOptions(), tmp_path).provisioner
    with pytest.raises(SettingsError) as excinfo:
        plan(provisioner)
    assert excinfo.value.where == f"{yaml_file}:5 (provisioner.scripts)"
    assert excinfo.value.fix.startswith("did you mean 'script'?")


@pytest.mark.parametrize("options", [{}, {"env": {"A": "1"}}, {"script": [], "inline": []}])
def test_plan_nothing_to_run(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match="shell provisioner: nothing to run") as excinfo:
        plan(config(tmp_path, **options))
    assert "script: converge.sh" in excinfo.value.fix


@pytest.mark.parametrize("env", [["A=1"], "A=1", 3])
def test_plan_bad_env_type(tmp_path: Path, env: object) -> None:
    with pytest.raises(SettingsError, match="`env` must be a mapping") as excinfo:
        plan(config(tmp_path, inline="true", env=env))
    assert excinfo.value.fix == "write `env: {NAME: value}`"


def test_plan_empty_list_env_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        plan(config(tmp_path, inline="true", env=[]))


@pytest.mark.parametrize(("key", "value"), [("script", 3), ("inline", ["ok", 1]), ("inline", {"a": "b"})])
def test_plan_bad_list_type(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"`{key}` must be a string or a list of strings"):
        plan(config(tmp_path, **{key: value}))


def test_script_argv() -> None:
    assert script_argv("/p/00-a.sh", b"#!/bin/bash\necho\n") == ["/p/00-a.sh"]
    assert script_argv("/p/00-a.py", b"#!/usr/bin/env python3\n") == ["/p/00-a.py"]
    assert script_argv("/p/01-b.sh", b"echo no shebang\n") == ["/bin/sh", "/p/01-b.sh"]
    assert script_argv("/p/02-c.sh", b" #!/bin/bash\n") == ["/bin/sh", "/p/02-c.sh"]
    assert script_argv("/p/03-d.sh", b"") == ["/bin/sh", "/p/03-d.sh"]


def test_shell_provisioner_satisfies_protocol() -> None:
    provisioner = ShellProvisioner()
    assert isinstance(provisioner, Provisioner)
    assert provisioner.name == "shell"
    assert [p.name for p in pytest_infranode_add_provisioners()] == ["shell"]


def test_check_validates(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="nothing to run"):
        ShellProvisioner().check(config(tmp_path))
    ShellProvisioner().check(config(tmp_path, inline="true"))


@dataclass
class Run:
    argv: list[str]
    env: dict[str, str] | None
    workdir: str | None
    user: str | None


@dataclass
class FakeNode:
    """Records what the provisioner asks of a node; answers each command from ``results``."""

    results: list[tuple[int, bytes]] = field(default_factory=list)
    copies: list[tuple[str, dict[str, tuple[bytes, int]]]] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def put_files(self, dest_dir: str, files: Mapping[str, tuple[bytes, int]]) -> None:
        self.copies.append((dest_dir, dict(files)))

    def run_argv(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        on_output: OutputSink | None = None,
    ) -> ExecResult:
        self.runs.append(Run(list(argv), dict(env) if env is not None else None, workdir, user))
        status, output = self.results.pop(0) if self.results else (0, b"")
        if on_output is not None and output:
            on_output(output)
        return ExecResult(status, output, b"")


def converge(node: FakeNode, cfg: ProvisionerConfig) -> tuple[int, str, list[bytes]]:
    streamed: list[bytes] = []
    result = ShellProvisioner().converge(cast(Node, node), cfg, streamed.append)
    return result.exit_status, result.output, streamed


def test_converge_runs_scripts_then_inline_in_order(tmp_path: Path) -> None:
    script(tmp_path / "a.sh", "#!/bin/bash\necho a\n")
    script(tmp_path / "b.sh", "echo b\n")
    cfg = config(
        tmp_path,
        script=["a.sh", "b.sh"],
        inline=["echo c", "echo d"],
        env={"SITE": "demo", "N": 1},
        user="deploy",
    )
    node = FakeNode(results=[(0, b"a\n"), (0, b"b\n"), (0, b"c\n"), (0, b"d\n")])
    status, output, streamed = converge(node, cfg)

    assert node.copies == [
        (
            REMOTE_DIR,
            {
                "00-a.sh": (b"#!/bin/bash\necho a\n", 0o755),
                "01-b.sh": (b"echo b\n", 0o755),
            },
        )
    ]
    assert [r.argv for r in node.runs] == [
        [f"{REMOTE_DIR}/00-a.sh"],
        ["/bin/sh", f"{REMOTE_DIR}/01-b.sh"],
        ["/bin/sh", "-c", "echo c"],
        ["/bin/sh", "-c", "echo d"],
    ]
    assert all(r.env == {"SITE": "demo", "N": "1"} for r in node.runs)
    assert all(r.workdir == REMOTE_DIR for r in node.runs)
    assert all(r.user == "deploy" for r in node.runs)
    assert status == 0
    assert output == (
        f"$ {REMOTE_DIR}/00-a.sh\na\n"
        f"$ /bin/sh {REMOTE_DIR}/01-b.sh\nb\n"
        "$ /bin/sh -c echo c\nc\n"
        "$ /bin/sh -c echo d\nd\n"
    )
    assert b"".join(streamed).decode() == output


def test_converge_stops_at_first_failure(tmp_path: Path) -> None:
    script(tmp_path / "a.sh", "echo a\n")
    cfg = config(tmp_path, script="a.sh", inline=["false", "echo never"])
    node = FakeNode(results=[(0, b"a\n"), (3, b"boom\n"), (0, b"never\n")])
    status, output, streamed = converge(node, cfg)

    assert status == 3
    assert [r.argv for r in node.runs] == [["/bin/sh", f"{REMOTE_DIR}/00-a.sh"], ["/bin/sh", "-c", "false"]]
    assert output == f"$ /bin/sh {REMOTE_DIR}/00-a.sh\na\n$ /bin/sh -c false\nboom\n"
    assert "never" not in output
    assert b"".join(streamed).decode() == output


def test_converge_first_script_fails(tmp_path: Path) -> None:
    script(tmp_path / "a.sh", "exit 7\n")
    script(tmp_path / "b.sh", "echo b\n")
    node = FakeNode(results=[(7, b"")])
    status, output, _ = converge(node, config(tmp_path, script=["a.sh", "b.sh"]))
    assert status == 7
    assert len(node.runs) == 1
    assert output == f"$ /bin/sh {REMOTE_DIR}/00-a.sh\n"


def test_converge_inline_only_copies_nothing(tmp_path: Path) -> None:
    node = FakeNode()
    status, output, _ = converge(node, config(tmp_path, inline="touch /etc/x"))
    assert status == 0
    assert node.copies == []
    assert [(r.argv, r.env, r.workdir, r.user) for r in node.runs] == [
        (["/bin/sh", "-c", "touch /etc/x"], {}, None, None)
    ]
    assert output == "$ /bin/sh -c touch /etc/x\n"


def test_converge_validates_before_touching_the_node(tmp_path: Path) -> None:
    node = FakeNode()
    with pytest.raises(SettingsError):
        converge(node, config(tmp_path, script="missing.sh"))
    assert node.copies == []
    assert node.runs == []


def test_masking_sink_hides_secrets_split_across_chunks() -> None:
    seen: list[bytes] = []
    sink = MaskingSink(seen.append, ["s3cr3t-token"])
    sink(b"login with s3cr")
    sink(b"3t-token now\nnext line s3cr3t-")
    sink(b"token")
    sink.flush()
    joined = b"".join(seen)
    assert b"s3cr3t" not in joined
    assert joined == b"login with ******** now\nnext line ********"


def test_secret_env_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFRANODE_TEST_SECRET", raising=False)
    with pytest.raises(SettingsError) as excinfo:
        plan(config(tmp_path, inline="true", secret_env=["INFRANODE_TEST_SECRET"]))
    assert "INFRANODE_TEST_SECRET" in excinfo.value.what
    assert "export INFRANODE_TEST_SECRET" in excinfo.value.fix


def test_a_user_the_node_does_not_know_is_named_as_the_reason(tmp_path: Path) -> None:
    cfg = config(tmp_path, inline=["whoami"], user="nosuchuser")
    # Docker's answer to an exec as an unknown user: 126 and no output; then `id` says so.
    node = FakeNode(results=[(126, b""), (1, b"id: 'nosuchuser': no such user\n")])
    result = ShellProvisioner().converge(cast(Node, node), cfg, lambda _chunk: None)
    assert result.exit_status == 126
    assert result.reason == (
        "user 'nosuchuser' does not exist in the node (it has no passwd entry), so no step can run as it "
        "(`user:` at default (provisioner.user)); create the user first: in the platform's image "
        "(`platform_definitions: {<platform>: {prepare: ['useradd ...']}}`), or run the steps as root by "
        "removing `user:`"
    )
    assert node.runs[1] == Run(["id", "-u", "--", "nosuchuser"], None, None, None)  # asked as root
    assert result.output.endswith(f"infranode: {result.reason}\n")  # in the log and its tail too


@pytest.mark.parametrize(
    ("user", "answers", "asked"),
    [
        ("app", [(126, b""), (0, b"1000\n")], True),  # the user exists: 126 is the step's own
        ("1234", [(126, b"")], False),  # a uid needs no passwd entry: not asked
        ("app", [(126, b""), (127, b"")], True),  # no `id` in the node: nothing claimed
        ("app", [(3, b"")], False),  # another status: not asked
    ],
)
def test_no_reason_is_made_up(
    tmp_path: Path, user: str, answers: list[tuple[int, bytes]], asked: bool
) -> None:
    node = FakeNode(results=list(answers))
    result = ShellProvisioner().converge(
        cast(Node, node), config(tmp_path, inline=["x"], user=user), lambda _c: None
    )
    assert result.reason == ""
    assert len(node.runs) == (2 if asked else 1)
