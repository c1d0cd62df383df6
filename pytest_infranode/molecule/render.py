"""The text of what ``infranode import molecule`` writes and prints. Pure."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import yaml

from pytest_infranode.molecule.translate import Translation


def infranode_yaml(translation: Translation) -> str:
    """infranode.yaml for a translated scenario: a header saying where it comes from, the
    settings, and the gaps as comments at the end."""
    s = translation.scenario
    source = os.path.relpath(s.file, translation.config_dir)
    layout = (
        "each Molecule platform is a node of `nodes:` on one platform (they share an image)"
        if translation.layout == "nodes"
        else "each Molecule platform is a platform of its own (their images differ) with its node; "
        "--infra-platform=NAME puts every node on NAME"
    )
    lines = [
        f"# Written by `infranode import molecule {s.directory.name}` from {source}.",
        f"# Layout: {layout}.",
        "# Edit freely; `infranode import molecule --force` writes it again from molecule.yml.",
        "",
        yaml.safe_dump(dict(translation.data), sort_keys=False, default_flow_style=False, width=100).rstrip(),
    ]
    if translation.gaps:
        lines += ["", "# Not carried over, or carried over differently (the import printed the same):"]
        for gap in translation.gaps:
            mark = "changed" if gap.kind == "changed" else "not supported"
            lines.append(f"# - [{mark}] {gap.subject}: {gap.reason}")
    return "\n".join(lines) + "\n"


def pytest_command(translation: Translation, cwd: Path) -> list[str]:
    """The pytest command line that runs the scenario's specs from ``cwd``: ``--rootdir`` is the
    folder of infranode.yaml, where the plugin looks for it."""

    def rel(path: Path) -> str:
        text = os.path.relpath(path, cwd)
        return text if text != "." else "."

    argv = ["pytest", f"--rootdir={rel(translation.config_dir)}"]
    argv += [rel(p) for p in translation.tests] or [rel(translation.config_dir)]
    return [*argv, *translation.pytest_options]


def report(translation: Translation, written: list[Path], cwd: Path) -> str:
    """What the command prints: the files written, the gaps, and how to run the specs."""
    lines = [f"wrote {os.path.relpath(p, cwd)}" for p in written]
    unsupported, changed = translation.unsupported, translation.changed
    if unsupported:
        lines += ["", f"not supported ({len(unsupported)}), left out of infranode.yaml:"]
        lines += [_indent(str(g)) for g in unsupported]
    if changed:
        lines += ["", f"carried over differently ({len(changed)}):"]
        lines += [_indent(str(g)) for g in changed]
    if not translation.gaps:
        lines += ["", "everything the scenario uses was carried over"]
    if translation.tests:
        lines += ["", "run the specs with:", "  " + shlex.join(pytest_command(translation, cwd))]
    else:
        verifier = translation.scenario.verifier.name
        lines += [
            "",
            f"the scenario has no testinfra specs (verifier: {verifier}): pytest has nothing to run",
        ]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
