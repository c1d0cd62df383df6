#!/usr/bin/env bash
# A real cgroup v2 + AppArmor Docker daemon for machines that are cgroup v1 (like the project's
# own): a small Debian 12 VM under QEMU, pure emulation (TCG), whose dockerd is reached from
# this machine on tcp://127.0.0.1:23750 only (QEMU user-net port forward on loopback). The guest
# also runs a rootless dockerd (Debian's rootlesskit and dockerd-rootless.sh, as the user
# `rootless`), reached on tcp://127.0.0.1:23751.
#
#   scripts/cgroup2-vm.sh build [IMAGE...] [--rootless IMAGE...]
#                                            make the cached VM disk, with IMAGEs from this
#                                            machine's daemon preloaded (no-op when cached);
#                                            those after --rootless go to the rootless daemon
#   scripts/cgroup2-vm.sh up                 boot it (a throwaway overlay over the cached disk);
#                                            prints `export DOCKER_HOST=...` on stdout
#   scripts/cgroup2-vm.sh down               stop the VM, remove its work dir (keeps the cache)
#   scripts/cgroup2-vm.sh sh 'COMMAND'       run COMMAND on the guest's serial console
#
#   eval "$(scripts/cgroup2-vm.sh up)"; pytest ...; scripts/cgroup2-vm.sh down
#
# Environment:
#   INFRANODE_CG2_CACHE         cached disks (default /var/cache/infranode/cgroup2-vm)
#   INFRANODE_CG2_DIR           work dir of the running VM (default /tmp/infranode-cg2)
#   INFRANODE_CG2_BOOT_TIMEOUT  seconds `up` waits for the guest's dockerd (default 600)
#   INFRANODE_CG2_SH_TIMEOUT    seconds `sh` waits for its command (default 300)
#   INFRANODE_CG2_IMAGES_FROM   daemon the IMAGEs are saved from (default: DOCKER_HOST, else
#                               the local socket)
#   INFRANODE_DEBIAN_MIRROR     Debian mirror for debootstrap (default http://deb.debian.org/debian)
#
# The cache holds base-<recipe>/ (the debootstrapped guest) and disk-<recipe+images>/ (a copy
# with the images loaded); `current` points at the disk `up` boots. <recipe> is a hash of this
# file, so any edit to it rebuilds from debootstrap (about 4 min); other image IDs only redo the
# preload. Only the current base and disk are kept. Must run as root (loop mounts, debootstrap).
set -euo pipefail

self=$(readlink -f "$0")
cache=${INFRANODE_CG2_CACHE:-/var/cache/infranode/cgroup2-vm}
dir=${INFRANODE_CG2_DIR:-/tmp/infranode-cg2}
mirror=${INFRANODE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
boot_timeout=${INFRANODE_CG2_BOOT_TIMEOUT:-600}
sh_timeout=${INFRANODE_CG2_SH_TIMEOUT:-300}

suite=bookworm            # guest Debian release (its docker.io is engine 20.10, like the host's)
disk_size=8G              # sparse; the guest's containers and images live on it
api_port=23750            # 127.0.0.1:23750 on this machine -> guest dockerd on 2375
rootless_port=23751       # 127.0.0.1:23751 on this machine -> guest 2376 -> the rootless dockerd
rootless_user=rootless    # uid 1000; its subordinate ids are 100000-165535
rootless_uid=1000
# Published ports: the guest's dockerd picks host ports for `-p PORT` from the kernel's ephemeral
# range, which the guest sets to this range; each port is forwarded from 127.0.0.1 here.
ports_first=23760
ports_last=23779
endpoint=tcp://127.0.0.1:$api_port
rootless_endpoint=tcp://127.0.0.1:$rootless_port
build_rootless_port=23752 # the rootless API while `build` boots the disk once to preload it

guest_packages=systemd,systemd-sysv,udev,dbus,kmod,docker.io,apparmor,linux-image-amd64,iproute2,iptables,ca-certificates,procps,curl,socat,e2fsprogs
# rootless Docker: rootlesskit (the user namespace), uidmap (newuidmap for the subordinate ids),
# slirp4netns (its network), dbus-user-session (the user's systemd that runs it)
guest_packages+=,rootlesskit,uidmap,slirp4netns,dbus-user-session

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cgroup2-vm: %s\n' "$*" >&2; exit 1; }
# seconds since $1 (an $EPOCHREALTIME), one decimal
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root"; }

# The host packages the lab needs, by name (scripts/packages.txt, group cgroup2); dockerd and
# containerd (for the preload) come with the engine the project already needs.
need_packages() {
    bash "$(dirname "$self")/ensure-packages.sh" cgroup2
    local tool
    for tool in dockerd containerd docker; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (scripts/ensure-docker.sh installs it)"
    done
}

# --- cleanup of what a build mounts and starts, also when it fails half-way ----------------------
cleanup_pids=()     # daemons we started, stopped last-in first-out
cleanup_mounts=()   # mount points, unmounted recursively
cleanup_paths=()    # temporary files and dirs

# Runs, and is not a zombie waiting to be reaped (a daemonized QEMU is PID 1's to reap).
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st:0:1}" != Z ]
}

stop_pid() {  # stop_pid PID NAME: SIGTERM, then SIGKILL after 30 s
    local pid=$1 i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do
        alive "$pid" || break
        sleep 0.5
    done
    if alive "$pid"; then
        log "$2 (pid $pid) did not stop in 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true   # reaps our own children; QEMU (daemonized) is not one
}

umount_tree() {  # unmount everything at or below $1
    local m
    for m in $(findmnt -rn -o TARGET | grep -E "^$1(/|$)" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

stop_daemons() {
    local i
    for ((i = ${#cleanup_pids[@]} - 1; i >= 0; i--)); do stop_pid "${cleanup_pids[i]}" daemon; done
    cleanup_pids=()
}

booting_pid=""      # QEMU while `up` waits for it: stopped if `up` fails or is interrupted

cleanup() {
    local i
    if [ -n "$booting_pid" ]; then
        stop_pid "$booting_pid" QEMU
        rm -f "$dir/overlay.qcow2"
        booting_pid=""
    fi
    stop_daemons
    for ((i = ${#cleanup_mounts[@]} - 1; i >= 0; i--)); do umount_tree "${cleanup_mounts[i]}"; done
    for ((i = ${#cleanup_paths[@]} - 1; i >= 0; i--)); do rm -rf -- "${cleanup_paths[i]}"; done
    cleanup_pids=() cleanup_mounts=() cleanup_paths=()
}
trap cleanup EXIT
# Without these a signal would end the script without the EXIT trap (and leave mounts and
# daemons behind); with them bash cleans up once the command in the foreground has returned
# (debootstrap: minutes). A CI timeout that signals the whole process group ends that at once.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------------------------

recipe_key() { sha256sum "$self" | cut -c1-16; }

# The guest, debootstrapped straight into a loop-mounted ext4 image: $1/{rootfs.img,vmlinuz,initrd.img}.
build_base() {
    local out=$1 tmp="$1.tmp.$$" root t0=$EPOCHREALTIME
    root=$tmp/mnt
    mkdir -p "$root"
    cleanup_paths+=("$tmp")
    truncate -s "$disk_size" "$tmp/rootfs.img"
    mkfs.ext4 -q -F -L cg2root "$tmp/rootfs.img"
    mount -o loop "$tmp/rootfs.img" "$root"
    cleanup_mounts+=("$root")

    log "debootstrap $suite with docker.io, apparmor, a kernel (about 4 min; log: $tmp/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$guest_packages" "$suite" "$root" "$mirror" \
            >"$tmp/debootstrap.log" 2>&1; then
        tail -20 "$tmp/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    log "debootstrap done in $(since "$t0") s"

    configure_guest "$root"

    # QEMU boots the kernel directly (-kernel/-initrd): no boot loader in the guest.
    local kernels=("$root"/boot/vmlinuz-*)
    [ ${#kernels[@]} -eq 1 ] || die "expected one kernel in the guest, found: ${kernels[*]}"
    cp "${kernels[0]}" "$tmp/vmlinuz"
    cp "$root/boot/initrd.img-${kernels[0]#*/boot/vmlinuz-}" "$tmp/initrd.img"

    umount_tree "$root"
    rmdir "$root"
    rm -f "$tmp/debootstrap.log"
    mv "$tmp" "$out"
    log "base disk made in $(since "$t0") s: $out"
}

configure_guest() {
    local root=$1
    echo cg2vm >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tcg2vm\n' >"$root/etc/hosts"
    echo '/dev/vda / ext4 rw,relatime 0 1' >"$root/etc/fstab"

    # Network: DHCP from QEMU's user net (guest 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3).
    printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-dhcp.network"
    echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
    chroot "$root" systemctl enable -q systemd-networkd

    # Root logs in on the serial console without a password (`sh` drives it); nothing else
    # reaches the guest but the forwarded ports.
    mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
    cat >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I linux
EOF
    chroot "$root" passwd -q -d root

    # The API on tcp 2375 through socket activation (docker.socket), not `-H tcp://`: dockerd
    # 20.10 deliberately sleeps 15 s at start when told to listen on a non-loopback TCP address
    # without TLS, and fd:// listeners skip that. Only QEMU's gateway (10.0.2.2, where the
    # forwarded connections come from) may connect: containers in the guest may not.
    mkdir -p "$root/etc/systemd/system/docker.socket.d" "$root/etc/systemd/system/docker.service.d"
    printf '[Socket]\nListenStream=2375\n' >"$root/etc/systemd/system/docker.socket.d/tcp.conf"
    cat >"$root/etc/systemd/system/docker.service.d/api-from-host-only.conf" <<'EOF'
[Service]
ExecStartPre=/bin/sh -c 'iptables -C INPUT -p tcp --dport 2375 ! -s 10.0.2.2 -j DROP 2>/dev/null || iptables -I INPUT -p tcp --dport 2375 ! -s 10.0.2.2 -j DROP'
EOF

    configure_rootless "$root"

    # Ports that `docker run -p PORT` publishes come from this range, each forwarded by QEMU.
    printf 'net.ipv4.ip_local_port_range = %s %s\n' "$ports_first" "$ports_last" \
        >"$root/etc/sysctl.d/60-infranode-published-ports.conf"

    # A small initrd with only what mounts the root disk (6 MB): the stock one (every storage
    # driver, 36 MB) took 11 s of an emulated boot to unpack and 15 s more to probe.
    printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/infranode-cg2.conf"
    printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic >>"$root/etc/initramfs-tools/modules"
    mount -t proc proc "$root/proc"
    chroot "$root" update-initramfs -u -k all >"$root/tmp/initramfs.log" 2>&1 \
        || { cat "$root/tmp/initramfs.log" >&2; die "update-initramfs failed"; }
    rm -f "$root/tmp/initramfs.log"
    umount "$root/proc"

    # Nothing periodic in a VM that lives minutes.
    chroot "$root" systemctl mask -q apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer fstrim.timer 2>/dev/null || true
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
}

# The user `rootless` runs Debian's dockerd-rootless.sh from its own systemd (lingering: started
# at boot, no login needed); the API socket in its runtime dir is served on tcp 2376 by socat, as
# that user, to QEMU's gateway only. Published ports of that daemon are not forwarded here.
configure_rootless() {
    local root=$1 home=/home/$rootless_user units
    chroot "$root" useradd -m -u "$rootless_uid" -s /bin/bash "$rootless_user"
    # what newuidmap may map (useradd writes these only on some set-ups: say it explicitly)
    echo "$rootless_user:100000:65536" >"$root/etc/subuid"
    echo "$rootless_user:100000:65536" >"$root/etc/subgid"
    mkdir -p "$root/var/lib/systemd/linger"
    touch "$root/var/lib/systemd/linger/$rootless_user"

    units=$root$home/.config/systemd/user
    mkdir -p "$units/default.target.wants"
    cat >"$units/docker.service" <<'EOF'
[Unit]
Description=rootless dockerd (the infranode cgroup v2 lab)

[Service]
Environment=PATH=/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=/usr/share/docker.io/contrib/dockerd-rootless.sh
Type=simple
Restart=on-failure
TimeoutStopSec=30
Delegate=yes
KillMode=mixed

[Install]
WantedBy=default.target
EOF
    ln -s ../docker.service "$units/default.target.wants/docker.service"
    chroot "$root" chown -R "$rootless_user:$rootless_user" "$home/.config"

    cat >"$root/etc/systemd/system/rootless-docker-api.service" <<EOF
[Unit]
Description=the rootless dockerd's API on tcp 2376 (from QEMU's gateway only)
After=user@$rootless_uid.service network-online.target

[Service]
User=$rootless_user
ExecStartPre=+/bin/sh -c 'iptables -C INPUT -p tcp --dport 2376 ! -s 10.0.2.2 -j DROP 2>/dev/null || iptables -I INPUT -p tcp --dport 2376 ! -s 10.0.2.2 -j DROP'
ExecStart=/usr/bin/socat TCP-LISTEN:2376,fork,reuseaddr UNIX-CONNECT:/run/user/$rootless_uid/docker.sock
Restart=always

[Install]
WantedBy=multi-user.target
EOF
    chroot "$root" systemctl enable -q rootless-docker-api.service
}

# A throwaway dockerd (and its own containerd) on this machine, whose data root is the guest's
# /var/lib/docker: `docker load` here writes the image store the guest's dockerd finds at boot.
# Both daemons keep all their state, sockets and pid files under $2; nothing listens on TCP, no
# iptables. The dockerd runs in a network namespace of its own (unshare --net), where it sees no
# link of this machine: a dockerd started with `--bridge none` deletes a docker0 it finds at
# start-up, and on this machine's network that is the host daemon's. Sets preload_sock.
start_preload_daemons() {
    local data_root=$1 rt=$2 i
    mkdir -p "$rt/exec" "$rt/containerd"
    cat >"$rt/containerd.toml" <<EOF
version = 2
root = "$rt/containerd/root"
state = "$rt/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$rt/containerd.sock"
[ttrpc]
  address = "$rt/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$rt/containerd/opt"
EOF
    containerd --config "$rt/containerd.toml" >"$rt/containerd.log" 2>&1 &
    cleanup_pids+=($!)
    for i in $(seq 1 60); do
        [ -S "$rt/containerd.sock" ] && break
        sleep 0.5
    done
    [ -S "$rt/containerd.sock" ] || { tail -20 "$rt/containerd.log" >&2; die "preload containerd did not start"; }

    # An empty config file of our own, so /etc/docker/daemon.json of this machine does not apply;
    # the trust key goes to $rt too, not /etc/docker/key.json.
    printf '{"deprecated-key-path": "%s"}\n' "$rt/key.json" >"$rt/daemon.json"
    unshare --net dockerd --config-file "$rt/daemon.json" \
        --data-root "$data_root" --exec-root "$rt/exec" --pidfile "$rt/dockerd.pid" \
        -H "unix://$rt/docker.sock" \
        --containerd "$rt/containerd.sock" \
        --containerd-namespace infranode-cg2-preload \
        --containerd-plugins-namespace infranode-cg2-preload-plugins \
        --storage-driver overlay2 \
        --bridge none --iptables=false --ip-masq=false --ip-forward=false --userland-proxy=false \
        >"$rt/dockerd.log" 2>&1 &
    cleanup_pids+=($!)
    preload_sock=unix://$rt/docker.sock
    for i in $(seq 1 120); do
        docker -H "$preload_sock" version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -20 "$rt/dockerd.log" >&2
    die "preload dockerd did not answer in 60 s"
}

# $1: the base dir; $2: the disk dir to make; $3: a file of "REF ID" lines.
build_disk() {
    local base=$1 out=$2 list=$3 tmp="$2.tmp.$$" rt t0=$EPOCHREALTIME refs
    mkdir -p "$tmp/mnt"
    cleanup_paths+=("$tmp")
    cp --sparse=always "$base/rootfs.img" "$tmp/rootfs.img"
    cp "$base/vmlinuz" "$base/initrd.img" "$tmp/"
    mount -o loop "$tmp/rootfs.img" "$tmp/mnt"
    cleanup_mounts+=("$tmp/mnt")

    # Short paths: unix socket paths are limited to 108 bytes.
    rt=$(mktemp -d /tmp/infranode-cg2-preload.XXXXXX)
    cleanup_paths+=("$rt")
    cleanup_mounts+=("$rt")
    start_preload_daemons "$tmp/mnt/var/lib/docker" "$rt"

    mapfile -t refs < <(awk '$1 == "rootful" { print $2 }' "$list")
    if [ ${#refs[@]} -gt 0 ]; then
        log "preloading ${refs[*]} into the disk"
        docker -H "$src_host" save "${refs[@]}" | docker -H "$preload_sock" load -q >&2
        docker -H "$preload_sock" images >&2
    fi

    # Stop both daemons (by the PIDs started above), then drop what only the throwaway daemon
    # needed: its network state (no bridge) would otherwise be the guest's first.
    stop_daemons
    umount_tree "$rt"
    rm -rf "$tmp/mnt/var/lib/docker/network" "$tmp/mnt/var/lib/docker/tmp" "$tmp/mnt/var/lib/docker/runtimes"

    umount_tree "$tmp/mnt"
    rmdir "$tmp/mnt"
    mapfile -t refs < <(awk '$1 == "rootless" { print $2 }' "$list")
    [ ${#refs[@]} -eq 0 ] || preload_rootless "$tmp" "${refs[@]}"
    cp "$list" "$tmp/images.txt"
    mv "$tmp" "$out"
    log "images preloaded in $(since "$t0") s: $out"
}

# The rootless daemon's image store is under the user's home, in ids shifted by its user
# namespace: a load on this machine cannot write it. So the disk boots once, here, with the
# rootless API forwarded to a port of its own (the lab's ports may be in use by a running VM), and
# the images are loaded through it (about 2 min per 300 MB under TCG); then the guest powers off.
# $1: the disk dir being made (rootfs.img, vmlinuz, initrd.img); then the image references.
preload_rootless() {
    local disk=$1 vm=$1/vm t0=$EPOCHREALTIME pid rl=tcp://127.0.0.1:$build_rootless_port i
    shift
    mkdir -p "$vm"
    log "booting the disk once to load $* into the rootless daemon"
    start_qemu "$disk" "file=$disk/rootfs.img,if=virtio,format=raw,cache=writeback" \
        "hostfwd=tcp:127.0.0.1:$build_rootless_port-:2376" "$vm"
    pid=$(cat "$vm/qemu.pid")
    cleanup_pids+=("$pid")
    until timeout 10 docker -H "$rl" info >/dev/null 2>&1; do
        alive "$pid" || { dir=$vm serial_tail; die "QEMU exited during the preload boot"; }
        [ "$(since "$t0" | cut -d. -f1)" -lt "$boot_timeout" ] \
            || { dir=$vm serial_tail; die "the rootless dockerd did not answer in $boot_timeout s"; }
        sleep 2
    done
    docker -H "$src_host" save "$@" | docker -H "$rl" load -q >&2
    docker -H "$rl" images >&2
    # A clean power-off, so every write reaches the disk; -no-reboot makes QEMU exit after it.
    printf '\025sync; systemctl poweroff\n' | socat - "UNIX-CONNECT:$vm/serial.sock" >/dev/null
    for i in $(seq 1 120); do
        alive "$pid" || break
        sleep 1
    done
    alive "$pid" && die "the guest did not power off in 120 s after the rootless preload"
    rm -rf -- "$vm"
    log "rootless images preloaded in $(since "$t0") s"
}

# Does the running VM (its QEMU holds the overlay's backing file open) use the disk in dir $1?
in_use() {
    local pid fd
    pid=$(qemu_pid) || return 1
    for fd in "/proc/$pid/fd"/*; do
        case "$(readlink "$fd")" in "$1"/*) return 0 ;; esac
    done
    return 1
}

# Remove what no longer serves: other recipes' bases, other disks, builds that were interrupted.
prune() {
    local keep_base=$1 keep_disk=$2 d pid
    for d in "$cache"/base-* "$cache"/disk-*; do
        [ -e "$d" ] || continue
        [ "$d" = "$keep_base" ] || [ "$d" = "$keep_disk" ] && continue
        case "$d" in
            *.tmp.*) pid=${d##*.tmp.}; kill -0 "$pid" 2>/dev/null && continue ;;
        esac
        if in_use "$d"; then
            log "keeping $d: a running VM uses it"
            continue
        fi
        umount_tree "$d"
        log "removing old $d"
        rm -rf -- "$d"
    done
}

cmd_build() {
    need_root build
    local t0=$EPOCHREALTIME ref id rkey dkey base disk list
    need_packages
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock -n 9 || { log "another build holds $cache/.lock; waiting"; flock 9; }

    src_host=${INFRANODE_CG2_IMAGES_FROM:-${DOCKER_HOST:-unix:///var/run/docker.sock}}
    [ "$src_host" != "$endpoint" ] || die "DOCKER_HOST is the VM's own daemon; images come from this machine's (set INFRANODE_CG2_IMAGES_FROM)"
    list=$(mktemp /tmp/infranode-cg2-images.XXXXXX)
    cleanup_paths+=("$list")
    local daemon=rootful
    for ref in "$@"; do
        [ "$ref" = --rootless ] && { daemon=rootless; continue; }
        id=$(docker -H "$src_host" image inspect -f '{{.Id}}' "$ref" 2>/dev/null) \
            || die "$ref: no such image on $src_host"
        echo "$daemon $ref $id" >>"$list"
    done

    sort -o "$list" "$list"   # the same images in any order are the same disk
    rkey=$(recipe_key)
    dkey=$( { echo "$rkey"; cat "$list"; } | sha256sum | cut -c1-16)
    base=$cache/base-$rkey
    disk=$cache/disk-$dkey
    [ -s "$list" ] || disk=$base   # nothing to preload: the base disk is the disk

    if [ -e "$disk/rootfs.img" ]; then
        ln -sfn "$(basename "$disk")" "$cache/current"
        log "cached, nothing to do: $disk ($(since "$t0") s)"
        return 0
    fi
    [ -e "$base/rootfs.img" ] || build_base "$base"
    [ "$disk" = "$base" ] || build_disk "$base" "$disk" "$list"
    ln -sfn "$(basename "$disk")" "$cache/current"
    prune "$base" "$disk"
    log "built in $(since "$t0") s: $disk ($(du -sh --apparent-size "$disk/rootfs.img" | cut -f1) apparent, $(du -sh "$disk/rootfs.img" | cut -f1) used)"
}

# --- the running VM ------------------------------------------------------------------------------

qemu_pid() {  # the PID of the QEMU this work dir started, if it still runs
    local pid
    pid=$(cat "$dir/qemu.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "file=$dir/overlay.qcow2" || return 1
    echo "$pid"
}

serial_tail() {
    [ -f "$dir/serial.log" ] || return 0
    echo "--- last lines of the serial console ($dir/serial.log):" >&2
    tail -n 30 "$dir/serial.log" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' >&2
}

print_info() {
    docker -H "$endpoint" info --format \
        'guest dockerd {{.ServerVersion}}: cgroup v{{.CgroupVersion}}, driver {{.CgroupDriver}}; security: {{join .SecurityOptions " "}}' >&2
    log "images in the guest: $(docker -H "$endpoint" images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"
    log "published ports: 127.0.0.1:$ports_first-$ports_last here = the guest's ports for \`-p PORT\`"
    docker -H "$rootless_endpoint" info --format \
        'rootless dockerd {{.ServerVersion}} on {{.DockerRootDir}}: cgroup v{{.CgroupVersion}}; security: {{join .SecurityOptions " "}}' >&2 || true
    log "images of the rootless dockerd: $(docker -H "$rootless_endpoint" images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"
    echo "export DOCKER_HOST=$endpoint"
}

# start_qemu DISKDIR DRIVE FORWARDS WORKDIR: boot the kernel of DISKDIR on DRIVE, in the
# background, with the serial console, pid file and errors in WORKDIR. KVM here is the PVM
# variant and does not boot stock kernels: TCG. -daemonize returns once QEMU has set up (bad
# options or a busy port fail here, with the message in qemu.err).
start_qemu() {
    local disk=$1 drive=$2 fwd=$3 work=$4
    qemu-system-x86_64 -name infranode-cg2 -nodefaults -display none -no-reboot \
        -accel tcg -cpu max -smp 2 -m 4096 \
        -kernel "$disk/vmlinuz" -initrd "$disk/initrd.img" \
        -append "console=ttyS0 root=/dev/vda rw panic=-1 loglevel=4 systemd.unified_cgroup_hierarchy=1" \
        -drive "$drive" \
        -netdev "user,id=n0,$fwd" -device virtio-net-pci,netdev=n0 \
        -device virtio-rng-pci \
        -chardev "socket,id=s0,path=$work/serial.sock,server=on,wait=off,logfile=$work/serial.log" \
        -serial chardev:s0 -monitor none \
        -daemonize -pidfile "$work/qemu.pid" 2>"$work/qemu.err" && return 0
    cat "$work/qemu.err" >&2
    return 1
}

cmd_up() {
    need_packages
    local t0=$EPOCHREALTIME disk pid p fwd
    if qemu_pid >/dev/null; then
        log "already up (pid $(qemu_pid))"
        print_info
        return 0
    fi
    disk=$(readlink -f "$cache/current" 2>/dev/null) && [ -e "$disk/rootfs.img" ] \
        || die "no cached disk in $cache: run \`$0 build [IMAGE...]\` first"
    cmd_down >/dev/null 2>&1   # a stale work dir of a VM that died

    mkdir -p -m 700 "$dir"
    touch "$dir/.infranode-cg2"
    # Every boot starts from the cached disk; its writes go to this overlay only.
    qemu-img create -q -f qcow2 -F raw -b "$disk/rootfs.img" "$dir/overlay.qcow2"

    fwd="hostfwd=tcp:127.0.0.1:$api_port-:2375,hostfwd=tcp:127.0.0.1:$rootless_port-:2376"
    for ((p = ports_first; p <= ports_last; p++)); do fwd+=",hostfwd=tcp:127.0.0.1:$p-:$p"; done
    start_qemu "$disk" "file=$dir/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe,aio=threads" \
        "$fwd" "$dir" || { rm -f "$dir/overlay.qcow2"; die "QEMU did not start"; }
    pid=$(qemu_pid) || die "QEMU started but its pid file is missing"
    booting_pid=$pid
    log "booting $disk (QEMU pid $pid); waiting up to $boot_timeout s for dockerd"

    until timeout 10 docker -H "$endpoint" info >/dev/null 2>&1; do
        if ! alive "$pid"; then
            booting_pid=""
            serial_tail
            die "QEMU exited during boot"
        fi
        if [ "$(since "$t0" | cut -d. -f1)" -ge "$boot_timeout" ]; then
            serial_tail
            die "the guest's dockerd did not answer on $endpoint in $boot_timeout s (VM stopped; serial log kept in $dir)"
        fi
        sleep 1
    done
    log "dockerd answers on $endpoint after $(since "$t0") s"
    until timeout 10 docker -H "$rootless_endpoint" info >/dev/null 2>&1; do
        alive "$pid" || { booting_pid=""; serial_tail; die "QEMU exited during boot"; }
        if [ "$(since "$t0" | cut -d. -f1)" -ge "$boot_timeout" ]; then
            serial_tail
            die "the guest's rootless dockerd did not answer on $rootless_endpoint in $boot_timeout s (VM stopped)"
        fi
        sleep 1
    done
    booting_pid=""
    log "the rootless dockerd answers on $rootless_endpoint after $(since "$t0") s"
    print_info
}

cmd_down() {
    local pid
    if pid=$(qemu_pid); then
        log "stopping QEMU (pid $pid)"
        stop_pid "$pid" QEMU
    fi
    if [ -f "$dir/.infranode-cg2" ]; then
        rm -rf -- "$dir"
    elif [ -d "$dir" ]; then   # not made by us: remove only our own files
        rm -f -- "$dir"/{overlay.qcow2,qemu.pid,qemu.err,serial.sock,serial.log}
    fi
    log "down"
}

# Type COMMAND into the root shell on the serial console and print what it prints. The markers
# are written with an empty '' in the middle, so the tty's echo of the typed line never matches.
# QEMU hands the typed bytes to the guest only as fast as its UART takes them and drops what is
# unread when the connection closes, so the connection stays open until the output is complete.
# The output is read from that connection: a client that does not read stalls the console, and
# QEMU's own serial.log repeats characters now and then when the client is slow.
cmd_sh() {
    [ $# -ge 1 ] || die "usage: $0 sh 'COMMAND'"
    qemu_pid >/dev/null || die "the VM is not up"
    [ -S "$dir/serial.sock" ] || die "no serial console at $dir/serial.sock"
    local tag="cg2sh$$x$RANDOM" rc out t0=$EPOCHREALTIME writer done_flag raw
    done_flag=$dir/sh-$tag.done
    raw=$dir/sh-$tag.out
    # Ctrl-U first clears whatever a previous, interrupted `sh` left typed. stdout through cat:
    # no pager, no terminal for the command; stdin from /dev/null: it cannot eat what is typed next.
    {
        printf "\025echo %s''-begin; ( %s ) </dev/null 2>&1 | cat; echo %s''-end \${PIPESTATUS[0]}\n" \
            "$tag" "$1" "$tag"
        while [ ! -e "$done_flag" ]; do sleep 0.2; done
    } | socat - "UNIX-CONNECT:$dir/serial.sock" >"$raw" &
    writer=$!
    while :; do
        out=$(tr -d '\r' <"$raw" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g')
        grep -q "^$tag-end " <<<"$out" && break
        if [ "$(since "$t0" | cut -d. -f1)" -ge "$sh_timeout" ]; then
            touch "$done_flag"; wait "$writer" || true; rm -f "$done_flag" "$raw"
            printf '%s\n' "$out" >&2
            die "no end of output in $sh_timeout s"
        fi
        sleep 0.3
    done
    touch "$done_flag"; wait "$writer" || true; rm -f "$done_flag" "$raw"
    sed -n "/^$tag-begin\$/,/^$tag-end /p" <<<"$out" | sed '1d;$d'
    rc=$(grep "^$tag-end " <<<"$out" | head -1 | cut -d' ' -f2)
    return "${rc:-1}"
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    up)    cmd_up ;;
    down)  cmd_down ;;
    sh)    shift; cmd_sh "$@" ;;
    *)     sed -n '2,13p' "$self" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
