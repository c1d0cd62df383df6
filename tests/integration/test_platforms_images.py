"""Platforms and images against the real daemon: boot, least privilege, pull failures, bootstrap."""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from collections.abc import Callable

import pytest

from pytest_infranode import cli
from pytest_infranode import labels
from pytest_infranode.engine import Engine
from pytest_infranode.engine.bootstrap import BOOTSTRAP_LABEL
from pytest_infranode.platforms import Catalog
from tests.integration.conftest import InfraRun

Run = Callable[..., InfraRun]

SHELL_NOOP = "provisioner:\n  name: shell\n  inline: ['true']\n"

SANDBOXED_UNIT = textwrap.dedent(
    """
    provisioner:
      name: shell
      inline:
        - |
          cat > /etc/systemd/system/sandboxed.service <<'UNIT'
          [Service]
          User=nobody
          ExecStart=/bin/sleep infinity
          PrivateTmp=yes
          ProtectSystem=strict
          ProtectHome=yes
          NoNewPrivileges=yes
          UNIT
          systemctl daemon-reload && systemctl start sandboxed
    """
)


def test_nodes_boot_running_with_real_sandboxing(pytester: pytest.Pytester, infra_run: Run) -> None:
    """debian-12 and debian-13 boot to `running` (not degraded) with the default flags, and a
    `User=` unit's sandboxing is really applied: its /tmp is private and /home inaccessible.
    Without CAP_SYS_ADMIN the unit still starts, but systemd silently skips the namespaces
    (docs/systemd-nodes.md), so "is running" alone would prove nothing."""
    pytester.makefile(".yaml", infranode=SANDBOXED_UNIT)
    pytester.makepyfile(
        """
        def test_sandboxed(host, infra_node):
            assert infra_node.sandbox == "ok"
            assert host.check_output("systemctl is-system-running") == "running"
            assert host.service("sandboxed").is_running
            pid = host.check_output("systemctl show -p MainPID --value sandboxed")
            assert host.process.get(pid=int(pid)).user == "nobody"
            mounts = host.check_output(f"cat /proc/{pid}/mountinfo")
            assert "systemd-private-" in mounts
            assert "/systemd/inaccessible/dir /home " in mounts

        def test_hostname_is_the_node_name(host, infra_node):
            assert host.check_output("hostname") == infra_node.name

        def test_package_index_is_kept_but_not_the_debs(host):
            # A converge can install without fetching the whole index again (no apt-get update).
            candidate = host.check_output("apt-cache policy nginx | sed -n 's/ *Candidate: //p'")
            assert candidate not in ("", "(none)")
            assert host.check_output("ls /var/cache/apt/archives | grep -c '[.]deb$' || true") == "0"
        """
    )
    run = infra_run("--infra-platform=debian-1[23]", "-v")
    run.result.assert_outcomes(passed=6)
    run.result.stdout.fnmatch_lines(
        ["*test_sandboxed[[]debian-12[]] PASSED*", "*test_sandboxed[[]debian-13[]] PASSED*"]
    )


def test_degraded_boot_is_reported_with_the_failed_unit(pytester: pytest.Pytester, infra_run: Run) -> None:
    """debian-13 without CAP_SYS_ADMIN and without a tmpfs on /tmp: tmp.mount fails."""
    pytester.makefile(
        ".yaml",
        infranode=SHELL_NOOP
        + textwrap.dedent(
            """
            platform_definitions:
              bare-13:
                base: debian-13
                capabilities: []
                tmpfs: {/run: 'rw,nosuid,nodev,exec,mode=755', /run/lock: 'rw,nosuid,nodev,noexec,mode=1777'}
            """
        ),
    )
    pytester.makepyfile("def test_up(host):\n    assert host.check_output('hostname')\n")
    run = infra_run("--infra-platform=bare-13", "-W", "default::pytest_infranode.InfranodeWarning")
    run.result.assert_outcomes(passed=1, warnings=2)
    run.result.stdout.fnmatch_lines(["*InfranodeWarning*booted degraded; failed units:*", "*tmp.mount*"])
    run.result.stdout.fnmatch_lines(["*systemd cannot sandbox units: the node lacks CAP_SYS_ADMIN*"])


def test_node_that_cannot_sandbox_units_is_reported(pytester: pytest.Pytester, infra_run: Run) -> None:
    """debian-12 without CAP_SYS_ADMIN boots `running` and its units start, unsandboxed: the
    session says so with the cause and the fix instead of passing in silence."""
    pytester.makefile(
        ".yaml",
        infranode=SHELL_NOOP
        + "platform_definitions:\n  weak-12:\n    base: debian-12\n    capabilities: []\n",
    )
    pytester.makepyfile(
        """
        def test_up(host, infra_node):
            assert host.check_output("systemctl is-system-running") == "running"
            assert infra_node.sandbox == "no-cap-sys-admin"
        """
    )
    run = infra_run("--infra-platform=weak-12", "-W", "default::pytest_infranode.InfranodeWarning")
    run.result.assert_outcomes(passed=1, warnings=1)
    run.result.stdout.fnmatch_lines(
        [
            "*InfranodeWarning*(weak-12): systemd cannot sandbox units: the node lacks CAP_SYS_ADMIN"
            "*Fix: keep SYS_ADMIN*"
        ]
    )


def test_init_that_never_comes_up_fails_with_its_log(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    pytester.makefile(
        ".yaml",
        infranode=SHELL_NOOP
        + "platform_definitions:\n  broken-12:\n    base: debian-12\n"
        + "    command: [/bin/sh, -c, 'echo init-said-goodbye; exit 3']\n",
    )
    pytester.makepyfile("def test_a(host):\n    pass\n\ndef test_b(host):\n    pass\n")
    run = infra_run("--infra-platform=broken-12")
    run.result.assert_outcomes(errors=2)
    out = run.result.stdout.str()
    assert "the node stopped while booting (container state: exited)" in out
    assert "init-said-goodbye" in out
    assert "Traceback" not in out
    assert "is not running" not in out  # the exec race is not what the user sees
    for image in engine._client.images.list(filters={"label": "infranode.platform=broken-12"}):
        engine._client.images.remove(image.id, force=True)  # its prepared image: test data only


def test_unpullable_image_fails_at_once_in_plain_words(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine
) -> None:
    image = f"infranode-missing-{uuid.uuid4().hex[:8]}.invalid/nothing:1"
    pytester.makefile(
        ".yaml",
        infranode=SHELL_NOOP + f"platform_definitions:\n  nowhere-1:\n    image: {image}\n",
    )
    pytester.makepyfile("def test_a(host):\n    pass\n")
    run = infra_run("--infra-platform=nowhere-1")
    run.result.assert_outcomes(errors=1)
    out = run.result.stdout.str()
    assert f"no way to get image {image} for platform nowhere-1" in out
    assert "the registry's host name does not resolve" in out
    assert f"daemon {engine.info.endpoint}" in out
    assert "registry_mirror:" in out
    assert "bootstrap: the platform has no debootstrap recipe" in out
    assert "Traceback" not in out


def test_registry_mirror_is_used_for_docker_hub_images(pytester: pytest.Pytester, infra_run: Run) -> None:
    mirror = f"mirror-{uuid.uuid4().hex[:8]}.invalid"
    pytester.makefile(
        ".yaml",
        infranode=SHELL_NOOP
        + f"registry_mirror: {mirror}\npull: always\n"
        + "platform_definitions:\n  hub-1:\n    image: library-only/thing:7\n",
    )
    pytester.makepyfile("def test_a(host):\n    pass\n")
    run = infra_run("--infra-platform=hub-1")
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines([f"*could not be pulled from {mirror}/library-only/thing:7*"])


def test_bootstrap_makes_a_base_image_a_session_uses(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """debootstrap from the Debian mirror → imported image → a node made from it."""
    tag = f"infranode-test/bootstrap-13:{uuid.uuid4().hex[:8]}"
    try:
        assert cli.main(["images", "bootstrap", "debian-13", "--tag", tag]) == 0
        out = capsys.readouterr().out
        assert f"==> {tag}: debootstrap trixie from http://deb.debian.org/debian" in out
        assert f"==> {tag}: made by debootstrap" in out
        assert engine.has_image(tag)
        found = engine.list_images(f"{BOOTSTRAP_LABEL}=trixie@http://deb.debian.org/debian")
        assert any(tag in i.repo_tags for i in found)
        assert cli.main(["images", "bootstrap", "debian-13", "--tag", tag]) == 0
        assert "already on the daemon" in capsys.readouterr().out

        pytester.makefile(
            ".yaml",
            infranode=SHELL_NOOP
            + textwrap.dedent(
                f"""
                platform_definitions:
                  boot-13:
                    image: {tag}
                    init: none
                    prepare: []
                    command: [sleep, infinity]
                """
            ),
        )
        pytester.makepyfile(
            """
            def test_os(host):
                assert host.system_info.distribution == "debian"
                assert host.file("/etc/debian_version").content_string.startswith("13")
            """
        )
        run = infra_run("--infra-platform=boot-13")
        run.result.assert_outcomes(passed=1)
    finally:
        for image in engine.list_images(f"{labels.PLATFORM}=boot-13"):
            engine.remove_image(image.id)
        if engine.has_image(tag):
            engine.remove_image(tag)


def test_images_lists_prepared_images(capsys: pytest.CaptureFixture[str], engine: Engine) -> None:
    assert cli.main(["images"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["IMAGE", "PLATFORM", "KIND", "RECIPE", "STATE", "SIZE"]
    assert "infranode/debian-12:" in out


def test_an_image_committed_from_a_node_never_becomes_the_prepared_image(
    pytester: pytest.Pytester, infra_run: Run, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """`docker commit` of a node keeps the node's labels (its recipe among them): a user's look
    inside must not become every later session's node, nor be listed or pruned as ours."""
    pytester.makefile(".yaml", infranode=SHELL_NOOP)
    infra_run("--infra-platform=debian-12").result.assert_outcomes()  # the prepared image exists
    key = engine.recipe_key(Catalog().get("debian-12"))
    name, committed = (
        f"infranode-probe-{uuid.uuid4().hex[:8]}",
        f"infranode-probe/look-inside:{uuid.uuid4().hex[:8]}",
    )
    marker = pytester.path / "marker"
    marker.write_text("committed\n")
    docker = ["docker", "-H", "unix:///var/run/docker.sock"]
    try:
        for argv in (
            ["create", "--name", name, f"infranode/debian-12:{key}"],
            ["cp", str(marker), f"{name}:/etc/committed-marker"],
            ["commit", name, committed],
        ):
            subprocess.run([*docker, *argv], check=True, capture_output=True, timeout=120)
        assert engine.list_images(f"{labels.RECIPE}={key}")  # the commit carries the recipe label
        pytester.makepyfile(
            "def test_fresh(host):\n    assert not host.file('/etc/committed-marker').exists\n"
        )
        run = infra_run("--infra-platform=debian-12")
        run.result.assert_outcomes(passed=1)
        capsys.readouterr()
        assert cli.main(["images"]) == 0
        listed = capsys.readouterr().out
        assert f"infranode/debian-12:{key}" in listed
        assert committed not in listed
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True, timeout=120, check=False)
        subprocess.run([*docker, "rmi", committed], capture_output=True, timeout=120, check=False)


def test_platforms_command_shows_aliases_and_availability(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["platforms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    debian12 = next(line for line in lines if line.startswith("debian-12 "))
    assert debian12.split() == [
        "debian-12",
        "debian:12",
        "debian",
        "systemd",
        "yes",
        "pull,",
        "debootstrap",
        "debian-bookworm",
    ]
    assert any("family:rhel" in line for line in lines)
