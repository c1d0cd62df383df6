"""Can a systemd node's units be sandboxed? Asked inside the node once it is up; pure otherwise.

systemd applies ``PrivateTmp=``, ``ProtectSystem=``, ``ProtectHome=`` and the like with mount
namespaces. Where it may not make them, it either fails the unit ("Failed to set up mount
namespacing: Permission denied": an AppArmor or SELinux policy refused the mount) or, without
CAP_SYS_ADMIN, starts the unit *without* them and says nothing: a spec that checks "the service
runs" then passes on a machine that is weaker than the real one. Both are reported, never silent.

On cgroup v2 a unit's resource limits (``MemoryMax=``, ``TasksMax=``, ``CPUQuota=``) work only
when the node's cgroup root hands the controllers down to systemd's slices; where it does not,
systemd applies no limit and says nothing. That is reported too.
"""

from __future__ import annotations

from typing import Literal

# A shell function for the node's /bin/sh, printing one word: ``ok``, ``no-cap-sys-admin`` (PID 1
# lacks CAP_SYS_ADMIN, bit 21 of its effective set), ``mount-denied`` (a new mount namespace may
# not mount a tmpfs), ``no-limits`` (cgroup v2, and the node's root cgroup has not handed the
# memory controller down) or ``unknown`` (no unshare in the image to ask with).
PROBE = r"""sandbox() {
  cap=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/1/status 2>/dev/null)
  if [ -n "$cap" ] && [ $(( 0x$cap >> 21 & 1 )) -eq 0 ]; then echo no-cap-sys-admin; return; fi
  command -v unshare >/dev/null 2>&1 || { echo unknown; return; }
  unshare -m sh -c 'mount -t tmpfs infranode-probe /mnt' 2>/dev/null || { echo mount-denied; return; }
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    case " $(cat /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null) " in
      *" memory "*) ;;
      *) echo no-limits; return ;;
    esac
  fi
  echo ok
}
"""

Verdict = Literal["ok", "no-cap-sys-admin", "mount-denied", "no-limits", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("ok", "no-cap-sys-admin", "mount-denied", "no-limits", "unknown")


def parse(word: str) -> Verdict:
    """The probe's word; anything else (an old image's shell that printed nothing) is unknown."""
    for verdict in VERDICTS:
        if word.strip() == verdict:
            return verdict
    return "unknown"


def warning(verdict: Verdict, node: str) -> str | None:
    """What to tell the user about ``node`` (``name (platform)``), or None when all is well."""
    if verdict == "no-cap-sys-admin":
        return (
            f"{node}: systemd cannot sandbox units: the node lacks CAP_SYS_ADMIN, so PrivateTmp=, "
            "ProtectSystem=, ProtectHome= and the like are silently not applied and a unit that "
            "relies on them passes here but not on a real machine. Fix: keep SYS_ADMIN in the "
            "platform's capabilities (the built-in platforms have it)."
        )
    if verdict == "mount-denied":
        return (
            f"{node}: systemd cannot sandbox units: the daemon's security policy refuses mounts in "
            "a new mount namespace, so units with PrivateTmp=, ProtectSystem= and the like fail "
            "with 'Failed to set up mount namespacing'. Fix: on AppArmor the plugin runs systemd "
            "nodes with apparmor=unconfined (see the security line of `infranode doctor`); on "
            "SELinux allow it with `setsebool -P container_manage_cgroup on` or run the platform "
            "with label=disable."
        )
    if verdict == "no-limits":
        return (
            f"{node}: systemd cannot apply units' resource limits: on this cgroup v2 daemon the "
            "node's root cgroup does not hand the memory controller down, so MemoryMax=, "
            "TasksMax=, CPUQuota= and the like are silently not applied. Fix: on rootless Docker "
            "or Podman, delegate the controllers to the user's systemd (a Delegate=yes drop-in for "
            "user@.service); a node started by the plugin on rootful Docker hands them down itself "
            "(docs/systemd-nodes.md, cgroup v2)."
        )
    return None
