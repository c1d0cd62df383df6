#!/usr/bin/env bash
# Make sure a Docker daemon answers. If none does and we are root on Debian/Ubuntu, install
# docker.io (and debootstrap, for base images without a registry) and start dockerd.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

# With --test-tools: what the project's own daemon-topology tests need besides Docker.
test_tools=false
[ "${1:-}" = "--test-tools" ] && test_tools=true

# The daemon-topology tests make TLS certificates with openssl and lab bridges with ip.
if $test_tools && [ "$(id -u)" = 0 ] && { ! command -v openssl >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; }; then
    log "installing openssl and iproute2"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl iproute2 >/dev/null
fi
# ... and run Podman's API service (podman) and a private sshd (openssh-server) for the Podman
# and ssh:// topologies; only as root, only what is missing.
if $test_tools && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    && { ! command -v podman >/dev/null 2>&1 || ! command -v slirp4netns >/dev/null 2>&1 || [ ! -x /usr/sbin/sshd ]; }; then
    log "installing podman and openssh-server (daemon-topology tests)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman slirp4netns openssh-server >/dev/null
fi
# ... and a local registry for the real pull tests (tests/integration/test_registry.py runs its
# own `docker-registry serve` on 127.0.0.1; the package's service is not used).
if $test_tools && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ ! -x /usr/bin/docker-registry ]; then
    log "installing docker-registry (registry pull tests)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null
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
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    log "installing docker.io and debootstrap"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null
fi
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
