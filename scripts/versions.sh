#!/usr/bin/env bash
# Print the versions a run works against, one line each, so that two machines' logs can be
# compared line by line: the host, the engine and its runtimes, Podman, and the Python side.
#   scripts/versions.sh [VENV]      (default .venv)
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${INFRANODE_VENV:-.venv}}

first_line() { "$@" 2>/dev/null | head -1 | tr -s ' '; }
line() { printf '%-16s %s\n' "$1" "${2:-not installed}"; }
deb() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

line "os" "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}") $(uname -r) $(uname -m)"
cgroup_layout() {
    if [ "$(stat -fc %T /sys/fs/cgroup/)" = cgroup2fs ]; then echo "v2"
    elif [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then
        echo "v1, hybrid (v2 holds: $(cat /sys/fs/cgroup/unified/cgroup.controllers))"
    else echo "v1"; fi
}
line "cgroup" "$(cgroup_layout)"
line "dockerd" "$(first_line dockerd --version) [deb $(deb docker.io)]"
line "docker CLI" "$(command -v docker) $(first_line docker --version)"
line "daemon" "$(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo 'does not answer')"
line "containerd" "$(first_line containerd --version)"
line "runc" "$(first_line runc --version)"
line "crun" "$(first_line crun --version)"
line "podman" "$(first_line podman --version) (default runtime: $(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo '?'))"
line "slirp4netns" "$(first_line slirp4netns --version)"
line "debootstrap" "$(deb debootstrap)"
line "qemu" "$(first_line qemu-system-x86_64 --version)"
line "python" "$(first_line "$venv/bin/python" --version) ($venv)"
if [ -x "$venv/bin/python" ]; then
    "$venv/bin/python" - <<'PY'
from importlib.metadata import PackageNotFoundError, version

for dist in ("pytest", "docker", "pytest-testinfra", "ansible-core", "pyinfra", "pytest-xdist", "paramiko"):
    try:
        found = version(dist)
    except PackageNotFoundError:
        found = "not installed"
    print(f"{dist:<16} {found}")
PY
fi
