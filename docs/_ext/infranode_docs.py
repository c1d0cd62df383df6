"""Sphinx directives that draw the reference pages from the code at build time.

- ``infranode-options``: the configuration reference, one row per entry of the option table
  (``pytest_infranode/options.py``): command line, ini key, YAML key, default, meaning.
- ``infranode-keys file|node``: wraps a hand-written table of the YAML keys that have no
  command-line option (``file``) or of a node's keys (``node``) and fails the build when its
  first column does not name exactly the keys the code accepts.
- ``infranode-platforms``: the built-in platform catalog.
- ``infranode-cli``: the ``infranode`` command's help, and each sub-command's.

The rows come from ``infranode_reference.py`` (pure, unit-tested without Sphinx).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import infranode_reference as reference
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

NONE = "\N{EN DASH}"
"""What an empty cell shows."""


def _cell(*content: nodes.Node) -> nodes.entry:
    entry = nodes.entry()
    entry += nodes.paragraph("", "", *content)
    return entry


def _literal(text: str | None) -> nodes.Node:
    return nodes.literal(text, text) if text else nodes.Text(NONE)


def _table(header: Sequence[str], rows: list[list[nodes.entry]], widths: Sequence[int]) -> nodes.table:
    table = nodes.table(classes=["infranode-reference"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += nodes.row("", *(_cell(nodes.Text(h)) for h in header))
    group += head
    body = nodes.tbody()
    for cells in rows:
        body += nodes.row("", *cells)
    group += body
    return table


class OptionsDirective(SphinxDirective):
    """The table of every setting of ``options.OPTIONS``."""

    def run(self) -> list[nodes.Node]:
        try:
            rows = reference.option_rows()
        except reference.ReferenceError as error:
            raise self.error(str(error)) from error
        self.env.note_dependency(reference.__file__)
        body = []
        for row in rows:
            target = nodes.target("", "", ids=[f"option-{row.noun.replace('_', '-')}"])
            body.append(
                [
                    _cell(target, _literal(row.command_line)),
                    _cell(_literal(row.ini_key)),
                    _cell(_literal(f"{row.yaml_key}:" if row.yaml_key else None)),
                    _cell(nodes.Text(row.default)),
                    _cell(nodes.Text(row.meaning)),
                ]
            )
        header = ("command line", "ini key", "infranode.yaml", "default", "meaning")
        return [_table(header, body, (22, 14, 14, 16, 34))]


class KeysDirective(SphinxDirective):
    """A hand-written table whose first column must name exactly the keys the code accepts."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        which = self.arguments[0]
        if which not in reference.KEY_SETS:
            raise self.error(f"infranode-keys takes one of {', '.join(reference.KEY_SETS)}, not {which!r}")
        container = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, container)
        tables = list(container.findall(nodes.table))
        if len(tables) != 1:
            raise self.error(f"infranode-keys {which} holds {len(tables)} tables, not one")
        documented = []
        for row in tables[0].findall(nodes.row):
            if isinstance(row.parent, nodes.thead):
                continue
            first = row.children[0]
            literal = next(iter(first.findall(nodes.literal)), None)
            if literal is not None:
                documented.append(literal.astext().rstrip(":"))
        problem = reference.key_mismatch(which, documented)
        if problem:
            raise self.error(
                f"the {which} keys table does not match the code ({problem}): "
                "update it to the keys of pytest_infranode/options.py and settings.py"
            )
        return list(container.children)


class PlatformsDirective(SphinxDirective):
    """The built-in catalog of ``platforms/builtin.py``."""

    def run(self) -> list[nodes.Node]:
        body = [
            [
                _cell(_literal(p.name)),
                _cell(*_joined(p.aliases)),
                _cell(_literal(p.image)),
                _cell(nodes.Text(p.family)),
                _cell(nodes.Text(p.package_manager)),
                _cell(nodes.Text(p.init)),
                _cell(_literal(p.debootstrap or None)),
            ]
            for p in reference.platform_rows()
        ]
        header = ("platform", "aliases", "base image", "family", "package manager", "init", "debootstrap")
        return [_table(header, body, (18, 16, 26, 10, 10, 10, 10))]


def _joined(words: Sequence[str]) -> list[nodes.Node]:
    if not words:
        return [nodes.Text(NONE)]
    out: list[nodes.Node] = []
    for i, word in enumerate(words):
        if i:
            out.append(nodes.Text(", "))
        out.append(nodes.literal(word, word))
    return out


class CliDirective(SphinxDirective):
    """``infranode --help`` and every sub-command's ``--help``."""

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for prog, text in reference.command_helps():
            section_id = "cli-" + prog.replace(" ", "-")
            out.append(nodes.rubric(prog, prog, ids=[section_id]))
            out.append(nodes.literal_block(text, text, language="text"))
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("infranode-options", OptionsDirective)
    app.add_directive("infranode-keys", KeysDirective)
    app.add_directive("infranode-platforms", PlatformsDirective)
    app.add_directive("infranode-cli", CliDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
