#!/usr/bin/env bash
# The documentation site, built as Read the Docs builds it: installs the `docs` extra
# (Sphinx, MyST, the furo theme: pure pip, from PyPI) into the given virtual environment and
# builds docs/ with warnings as errors (-W --keep-going), every cross-reference checked (-n)
# and MyST's checks of internal links and heading anchors. Run by .ci/run; needs no daemon.
#
#   scripts/check-docs.sh [VENV] [OUTDIR]    (default .venv, $TMPDIR/infranode-docs)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${INFRANODE_VENV:-.venv}}
out=${2:-${TMPDIR:-/tmp}/infranode-docs}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'check-docs: %s\n' "$*" >&2; exit 1; }

[ -x "$venv/bin/python" ] || die "no virtual environment at $venv (make one: bash scripts/dev setup)"
started=$(date +%s)
log "installing pytest-infranode[docs] into $venv"
"$venv/bin/python" -m pip install -q -e '.[docs]'
"$venv/bin/python" -c 'import sphinx, myst_parser, furo; print(f"==> Sphinx {sphinx.__version__}, myst-parser {myst_parser.__version__}, furo {furo.__version__}")' >&2

# A fresh output folder: every page is read again, so every warning is seen again.
rm -rf "$out"
log "building docs/ into $out (warnings are errors)"
"$venv/bin/python" -m sphinx -W --keep-going -n -q -b html docs "$out"
[ -f "$out/index.html" ] && [ -f "$out/configuration.html" ] || die "the build wrote no index.html/configuration.html"
log "documentation built in $(( $(date +%s) - started )) s: $out/index.html"
