#!/usr/bin/env bash
# The unit tests against the lowest versions pyproject.toml allows, and against the newest pip
# finds today, each in a fresh virtual environment. The lower bounds are read from pyproject.toml
# (scripts/dependency-bounds.py): raising one there is how a failing bound is fixed.
#
#   scripts/check-bounds.sh [lowest|newest]...    (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
shown="pytest|pytest-testinfra|docker|pluggy|tenacity|PyYAML|ansible-core|pyinfra|paramiko|pytest-xdist"

work=$(mktemp -d /tmp/infranode-bounds.XXXXXX)
trap 'rm -rf "$work"' EXIT

run() {
    local kind=$1 venv=$work/$1
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    if [ "$kind" = lowest ]; then
        python3 scripts/dependency-bounds.py test >"$work/lowest.txt"
        "$venv/bin/python" -m pip install -q -c "$work/lowest.txt" -e '.[test]'
    else
        "$venv/bin/python" -m pip install -q --upgrade -e '.[test]'
    fi
    log "$kind versions: $("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE "^($shown)==" | tr '\n' ' ')"
    "$venv/bin/pytest" tests/unit -q -p no:cacheprovider
}

for kind in "${@:-lowest newest}"; do
    for k in $kind; do
        case "$k" in
            lowest|newest) run "$k" ;;
            *) echo "usage: scripts/check-bounds.sh [lowest|newest]..." >&2; exit 2 ;;
        esac
    done
done
