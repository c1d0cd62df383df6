"""The rule for files the configuration names (scripts, playbooks, directories copied into a
node): each is a regular file (or a directory of them) inside the project, the rootdir.

A symlink that leaves the project, an absolute path elsewhere, a FIFO, a device or a socket is
refused before any node exists, so that nothing from outside the project (a CI runner's
``/etc/shadow``, its credentials) is ever copied into a node by default. ``allow_outside_project:
true`` lifts the "inside the project" part of the rule, never the "regular file" part.

Pure apart from ``stat`` calls on the runner's files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import final

from pytest_infranode.errors import SettingsError

ALLOW_KEY = "allow_outside_project"
"""The YAML key (and ``--infra-allow-outside-project``, ``infra_allow_outside_project``) that lifts
the "inside the project" rule."""


@final
@dataclass(frozen=True, slots=True)
class FileRule:
    """Where the files the configuration names may be.

    :param project: the project directory (pytest's rootdir).
    :param allow_outside: ``allow_outside_project: true``: files outside the project are read too.
    """

    project: Path
    allow_outside: bool = False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_path(path: Path, rule: FileRule, *, what: str, where: str, directory: bool = False) -> Path:
    """``path`` (existing), checked against ``rule``: a regular file (or, with ``directory``, a
    directory whose every file is one) that is, symlinks followed, inside the project.

    :param what: how the message names it (``shell provisioner: script 'converge.sh'``).
    :param where: the option at fault (file:line).
    :return: ``path`` as given.
    :raises SettingsError: naming the path, what it leads to and the rule.
    """
    real = _check_inside(path, rule, what, where)
    mode = os.stat(real).st_mode
    if directory:
        if not stat.S_ISDIR(mode):
            raise SettingsError(
                f"{what} is {_kind(mode)}, not a directory: {path}",
                where=where,
                fix="name a directory of the project",
            )
        for _file in walk(path, rule, what=what, where=where):
            pass
        return path
    if not stat.S_ISREG(mode):
        raise SettingsError(
            f"{what} is {_kind(mode)}, not a regular file: {path}"
            + (f" (which leads to {real})" if str(real) != os.path.normpath(path.absolute()) else ""),
            where=where,
            fix="files the configuration names must be regular files (a FIFO or a device would "
            "be read without end); name a regular file of the project",
        )
    return path


def walk(root: Path, rule: FileRule, *, what: str, where: str) -> Iterator[Path]:
    """Every regular file under the directory ``root``, sorted, each checked like
    :func:`check_path` (``__pycache__`` left out); symlinked directories are followed once.

    :raises SettingsError: the first entry that breaks the rule, named by its path.
    """
    seen: set[Path] = set()

    def visit(directory: Path) -> Iterator[Path]:
        real = directory.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in sorted(directory.iterdir()):
            if entry.name == "__pycache__":
                continue
            label = f"{what}: {entry.relative_to(root).as_posix()!r}"
            try:
                mode = entry.stat().st_mode
            except OSError:  # a dangling symlink: nothing to copy, and nothing outside is read
                raise SettingsError(
                    f"{label} is a symlink that leads nowhere: {entry} -> {os.readlink(entry)}",
                    where=where,
                    fix="remove the link or make it point at a file of the project",
                ) from None
            if stat.S_ISDIR(mode):
                if entry.is_symlink():
                    _check_inside(entry, rule, label, where)
                yield from visit(entry)
            else:
                yield check_path(entry, rule, what=label, where=where)

    yield from visit(root)


def _check_inside(path: Path, rule: FileRule, what: str, where: str) -> Path:
    """``path`` with its symlinks followed, refused when that is outside the project."""
    real = path.resolve()
    project = rule.project.resolve()
    if not rule.allow_outside and not _inside(real, project):
        link = f" (which leads to {real})" if str(real) != os.path.normpath(path.absolute()) else ""
        raise SettingsError(
            f"{what} is outside the project: {path}{link} is not under {project}",
            where=where,
            fix=f"files the configuration names must be inside the project (the rootdir, {project}), "
            "so that nothing else on this machine is copied into a node: copy the file into the "
            f"project; or, if it must come from elsewhere, set `{ALLOW_KEY}: true` in the "
            "configuration file",
        )
    return real
