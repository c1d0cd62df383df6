#!/usr/bin/env bash
# What a `pip install pytest-infranode` user gets, checked as they would get it: builds the sdist
# and the wheel, checks their metadata (twine check) and their contents, installs the wheel into
# a fresh virtual environment outside the checkout and runs the example suite from a folder that
# is not the checkout, against a real node. Run by .ci/run; needs a Docker daemon that answers.
#
#   scripts/check-dist.sh [PLATFORM]    (default debian-12)
#
# Environment: INFRANODE_VENV (the project's venv, where `build` and `twine` are installed;
# default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${INFRANODE_VENV:-.venv}
platform=${1:-debian-12}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'check-dist: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d /tmp/infranode-dist.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$venv/bin/python" -m pip install -q build twine
log "building the sdist and the wheel into $work/dist"
"$venv/bin/python" -m build -q --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; die "python -m build failed"; }
"$venv/bin/python" -m twine check --strict "$work"/dist/*

# Every file the package needs at run time, in the wheel; what the README and the doctor's fix
# texts send a user to, in the sdist.
"$venv/bin/python" - "$work/dist" <<'EOF'
import sys, tarfile, zipfile
from email.parser import Parser
from pathlib import Path

dist = Path(sys.argv[1])
wheel = next(dist.glob("*.whl"))
sdist = next(dist.glob("*.tar.gz"))
names = set(zipfile.ZipFile(wheel).namelist())
meta_dir = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
needed = [
    "pytest_infranode/py.typed",
    "pytest_infranode/plugin.py",
    "pytest_infranode/provisioners/ansible_plugins/connection/infranode.py",
    "pytest_infranode/provisioners/ansible_plugins/callback/infranode_changes.py",
    "pytest_infranode/molecule/reader.py",
    f"{meta_dir}/entry_points.txt",
    f"{meta_dir}/licenses/LICENSE",
]
missing = [n for n in needed if n not in names]
stray = sorted(n for n in names if n.startswith(("tests/", "examples/", "scripts/")) or "__pycache__" in n)
entry = zipfile.ZipFile(wheel).read(f"{meta_dir}/entry_points.txt").decode()
for line in ("infranode = pytest_infranode.plugin", "infranode = pytest_infranode.cli:main"):
    if line not in entry:
        missing.append(f"entry point {line!r}")
meta = Parser().parsestr(zipfile.ZipFile(wheel).read(f"{meta_dir}/METADATA").decode())
if meta["License-Expression"] != "MIT":
    missing.append("License-Expression: MIT")
top = {Path(n).parts[1] for n in tarfile.open(sdist).getnames() if len(Path(n).parts) > 1}
for folder in ("pytest_infranode", "docs", "scripts", "examples", "tests", "LICENSE", "README.md", "CHANGELOG.md"):
    if folder not in top:
        missing.append(f"sdist: {folder}")
if missing or stray:
    sys.exit(f"check-dist: missing {missing}; not for the wheel {stray}")
print(f"==> {wheel.name}: {len(names)} files, run-time files and entry points present", file=sys.stderr)
print(f"==> {sdist.name}: {', '.join(sorted(top))}", file=sys.stderr)
EOF

log "installing the wheel into a fresh virtual environment ($work/venv)"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/dist/*.whl
where=$(cd "$work" && "$work/venv/bin/python" -c 'import pytest_infranode, os; print(os.path.dirname(pytest_infranode.__file__))')
case "$where" in
    "$work/venv/"*) log "pytest_infranode is imported from $where" ;;
    *) die "pytest_infranode is imported from $where, not from the fresh venv" ;;
esac
"$work/venv/bin/infranode" --help >/dev/null

# The example, copied to a folder of its own: no conftest, pyproject or .venv of the checkout near it.
cp -r examples/nginx "$work/example"
log "examples/nginx from $work/example with the installed wheel, on $platform"
(cd "$work/example" && "$work/venv/bin/pytest" -p no:cacheprovider -q --infra-platform="$platform")
log "the installed wheel works outside the checkout"
