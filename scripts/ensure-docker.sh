#!/usr/bin/env bash
# Make sure a Docker daemon answers. If none does, install the engine's packages by name where
# missing (scripts/packages.txt, as root on Debian/Ubuntu) and start dockerd. A daemon that
# already answers (Docker CE, Docker Desktop, a remote DOCKER_HOST) is used as it is.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

# What the project's own daemon-topology, Podman, ssh and registry tests start beside Docker, by
# name (scripts/packages.txt, group test).
if [ "${1:-}" = "--test-tools" ]; then
    bash "$(dirname "$0")/ensure-packages.sh" test
fi

if command -v docker >/dev/null 2>&1 && answers; then
    log "Docker daemon answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
    echo "DOCKER_HOST=$DOCKER_HOST is set but no daemon answers there; start it or unset DOCKER_HOST." >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "No Docker daemon answers and this is not root: start Docker (sudo systemctl start docker)" \
         "or add yourself to the docker group, then run this again." >&2
    exit 1
fi
# No daemon answers: the engine's packages (Debian's docker.io and what it runs with), by name.
bash "$(dirname "$0")/ensure-packages.sh" engine
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker || true
fi
if ! answers; then
    log "starting dockerd (log: /var/log/infranode-dockerd.log)"
    setsid dockerd >/var/log/infranode-dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 1 60); do
    if answers; then
        log "Docker daemon answers ($(docker version -f '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not come up in 30 s; its log:" >&2
tail -20 /var/log/infranode-dockerd.log >&2 || true
exit 1
