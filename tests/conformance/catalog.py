"""What the conformance suite installs and how it tells that each package works: one entry per
package (its node, its units, how it answers) and the declared expectations (what cannot run, on
which platform and cgroup version, and why). Pure data; the specs and the table read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    """A Debian package installed with its defaults, and how to tell that it works.

    `units` must all be active; then every address of `listens` must be listening
    (testinfra's `host.socket` form) and `command`, if any, must exit 0. `start`: the package
    leaves its units disabled (Debian's nftables), so the suite starts them, as a role would."""

    name: str
    node: str
    units: tuple[str, ...]
    listens: tuple[str, ...] = ()
    command: str = ""
    start: bool = False


@dataclass(frozen=True)
class Expectation:
    """A package that is known not to run: where (platforms, cgroup versions) and why.

    `evidence` must be in what the check saw (systemd's state, the unit's log): a package that
    fails for another reason fails the suite, as one that starts working does."""

    package: str
    cause: str
    evidence: str
    platforms: tuple[str, ...] = ("debian-12", "debian-13")
    cgroups: tuple[int, ...] = (1, 2)

    def covers(self, platform: str, cgroup: int) -> bool:
        return platform in self.platforms and cgroup in self.cgroups


# Two nodes per platform, because some defaults want the same port (nginx and apache2 on 80,
# bind9 and unbound on 53). tests/conformance/infranode.yaml installs each node's packages in one
# apt-get run; tests/unit/test_conformance_table.py checks that it names exactly these.
PACKAGES: tuple[Package, ...] = (
    # node a
    Package("nginx", "a", ("nginx",), ("tcp://0.0.0.0:80",)),
    Package("postgresql", "a", ("postgresql",), ("tcp://127.0.0.1:5432",), "pg_isready -h 127.0.0.1"),
    Package("redis-server", "a", ("redis-server",), ("tcp://127.0.0.1:6379",)),
    Package("memcached", "a", ("memcached",), ("tcp://127.0.0.1:11211",)),
    Package("bind9", "a", ("named",), ("tcp://127.0.0.1:53",)),
    Package("postfix", "a", ("postfix",), ("tcp://0.0.0.0:25",)),
    Package("haproxy", "a", ("haproxy",), (), "test -S /run/haproxy/admin.sock"),
    Package("squid", "a", ("squid",), ("tcp://0.0.0.0:3128",)),
    Package("mosquitto", "a", ("mosquitto",), ("tcp://127.0.0.1:1883",)),
    Package("chrony", "a", ("chrony",), (), "chronyc -n tracking"),
    Package("nftables", "a", ("nftables",), (), "nft list ruleset", start=True),
    Package("auditd", "a", ("auditd",), (), "auditctl -s"),
    Package("openssh-server", "a", ("ssh",), ("tcp://0.0.0.0:22",)),
    Package(
        "rsyslog",
        "a",
        ("rsyslog",),
        (),
        "logger conformance-probe && sleep 1 && grep -q conformance-probe /var/log/syslog",
    ),
    Package("cron", "a", ("cron",), (), "pidof cron"),
    Package("fail2ban", "a", ("fail2ban",), (), "fail2ban-client ping"),
    Package("vsftpd", "a", ("vsftpd",), ("tcp://0.0.0.0:21",)),
    Package("prometheus-node-exporter", "a", ("prometheus-node-exporter",), ("tcp://0.0.0.0:9100",)),
    Package("slapd", "a", ("slapd",), ("tcp://0.0.0.0:389",)),
    Package("snmpd", "a", ("snmpd",), ("udp://127.0.0.1:161",)),
    # node b
    Package("apache2", "b", ("apache2",), ("tcp://0.0.0.0:80",)),
    Package("mariadb-server", "b", ("mariadb",), ("tcp://127.0.0.1:3306",), "mariadb -e 'select 1'"),
    Package("unbound", "b", ("unbound",), ("tcp://127.0.0.1:53",)),
    Package("dovecot-imapd", "b", ("dovecot",), ("tcp://0.0.0.0:143",)),
    Package("rabbitmq-server", "b", ("rabbitmq-server",), ("tcp://0.0.0.0:5672",)),
    Package("samba", "b", ("smbd", "nmbd"), ("tcp://0.0.0.0:445",)),
    Package("nfs-kernel-server", "b", ("nfs-server",), ("tcp://0.0.0.0:2049",)),
)

# Filled from measured runs (docs/conformance.md): each entry is a failure seen for real, with
# the cause systemd or the daemon gave. The suite fails when one of them starts working (strict
# xfail) as well as when a package not named here stops.
IPV6 = "no IPv6 on loopback: Docker switches IPv6 off in containers, the default config binds ::1"
EXPECTED: tuple[Expectation, ...] = (
    Expectation(
        "chrony",
        "ConditionCapability=CAP_SYS_TIME: setting the clock would set the host's "
        "(a dangerous grant, never a default)",
        "CAP_SYS_TIME",
    ),
    Expectation(
        "auditd",
        "kernel feature: the kernel audit subsystem is the host's, shared by every container "
        "(a dangerous grant)",
        "audit",
    ),
    Expectation(
        "nfs-kernel-server",
        "kernel feature: the nfsd file system is the host kernel's (unknown filesystem type 'nfsd'); "
        "its mount is masked in the prepared image, so nfs-server is skipped by its condition",
        "nfs-server inactive: Result=success ExecMainStatus=0 ActiveState=inactive ConditionResult=no",
    ),
    Expectation(
        "fail2ban",
        "machine state, not the container: Debian 12's sshd jail reads /var/log/auth.log, "
        "absent on a machine nobody has logged into yet",
        "Have not found any log file for sshd jail",
        platforms=("debian-12",),
    ),
    Expectation(
        "(boot of node a)",
        "degraded: the kernel audit is the host's (auditd; audit-rules on Debian 13), and "
        "fail2ban on Debian 12",
        "audit",
    ),
)

NODES: tuple[str, ...] = tuple(dict.fromkeys(p.node for p in PACKAGES))


def packages_of(node: str) -> tuple[Package, ...]:
    return tuple(p for p in PACKAGES if p.node == node)


def expectation_of(package: str, platform: str, cgroup: int) -> Expectation | None:
    """Why `package` is declared not to run on `platform` under cgroup `cgroup`, if it is."""
    for expectation in EXPECTED:
        if expectation.package == package and expectation.covers(platform, cgroup):
            return expectation
    return None
