#!/usr/bin/env bash
# Make Debian base images without a registry (debootstrap + docker import), for machines that
# cannot pull from Docker Hub. Images already on the daemon are left alone.
#   scripts/make-base-images.sh debian:12 debian:13
# Once the package is installed this is `infranode images bootstrap debian-12 debian-13`; the
# shell steps below only serve a fresh checkout, before .venv exists.
set -euo pipefail

mirror=${INFRANODE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '==> %s\n' "$*" >&2; }

py=${INFRANODE_PYTHON:-${INFRANODE_VENV:-.venv}/bin/python}
if [ -x "$py" ] && "$py" -c 'import pytest_infranode.engine.bootstrap' 2>/dev/null; then
    names=()
    for image in "$@"; do names+=("${image/:/-}"); done
    exec "$py" -m pytest_infranode.cli images bootstrap ${INFRANODE_DEBIAN_MIRROR:+--mirror "$mirror"} "${names[@]}"
fi

for image in "$@"; do
    if docker image inspect "$image" >/dev/null 2>&1; then
        log "$image: present"
        continue
    fi
    case "$image" in
        debian:11) suite=bullseye ;;
        debian:12) suite=bookworm ;;
        debian:13) suite=trixie ;;
        *) echo "$image: no recipe to make it locally (only debian:11/12/13); pull it instead" >&2; exit 1 ;;
    esac
    if ! command -v debootstrap >/dev/null 2>&1; then
        echo "debootstrap is missing: apt-get install debootstrap" >&2
        exit 1
    fi
    root=$(mktemp -d /tmp/infranode-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    log "$image: debootstrap $suite from $mirror (about 30 s)"
    if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
        tail -20 "$root.log" >&2
        exit 1
    fi
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$image" >/dev/null
    rm -rf "$root" "$root.log"
    trap - EXIT
    log "$image: imported"
done
