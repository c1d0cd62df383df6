#!/usr/bin/env bash
# Install, by name, every package of the given groups of scripts/packages.txt that is missing.
#
#   scripts/ensure-packages.sh engine          what `scripts/dev example` needs
#   scripts/ensure-packages.sh engine test     what `scripts/dev test` needs
#
# Missing means "dpkg does not list it as installed", never "a command of that name exists":
# a tool found on PATH may come from elsewhere (the machine image's own docker CLI, say).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

[ $# -gt 0 ] || { echo "usage: scripts/ensure-packages.sh GROUP..." >&2; exit 2; }
wanted=$(awk -v groups=" $* " '!/^#/ && NF >= 2 {
    n = split($2, g, ","); for (i = 1; i <= n; i++) if (index(groups, " " g[i] " ")) { print $1; break } }' scripts/packages.txt)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
for pkg in $wanted; do
    installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    log "packages of $*: all $(echo "$wanted" | wc -w) installed"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
log "installing ${missing[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
