"""Throwaway daemon topologies for the integration tests: a second dockerd (plain or TLS) and
openssl-made certificates.

Rules learnt the hard way (see the project's daemon-topology notes), kept here on purpose:

* a second dockerd must never run with ``--bridge=none``: at start-up it then deletes the
  host's ``docker0``. Each lab daemon gets its own bridge, and iptables, masquerading and
  ip-forwarding management are off, so it cannot touch the host daemon's network;
* separate ``--data-root``, ``--exec-root``, ``--pidfile``, an empty ``--config-file`` (the
  host's daemon.json may name sockets or a data root) and its own containerd namespaces
  (a system containerd, if any, is shared);
* it is stopped by the PID it wrote, never by name; mounts left under its roots are unmounted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class LabError(RuntimeError):
    """A lab topology could not be set up (this machine lacks root, dockerd or openssl)."""


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LabError(f"the daemon-topology tests need `{tool}` on PATH (apt-get install {tool})")
    return path


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _log_tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(process: subprocess.Popen[bytes] | None, wait: float) -> None:
    """SIGTERM a process we started, then SIGKILL it if it does not end within ``wait`` s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _unmount_below(root: Path) -> None:
    """Lazily unmount whatever a lab daemon left mounted under ``root`` (deepest first)."""
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        mounts = [line.split()[1] for line in fh if f" {root}/" in line]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


@dataclass
class LabDaemon:
    name: str
    root: Path
    port: int
    bridge: str
    process: subprocess.Popen[bytes] | None = None
    argv: tuple[str, ...] = ()

    def restart(self, timeout: float = 60) -> None:
        """Stop the daemon and start it again on the same data (a daemon restart mid-session)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        with open(self.root / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(
                list(self.argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while port_is_free(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"lab dockerd {self.name!r} did not come back:\n{self.log_tail()}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        return _log_tail(self.root / "dockerd.log", lines)

    def stop(self) -> None:
        _terminate(self.process, 20)
        _unmount_below(self.root)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def start_dockerd(
    name: str, base: Path, port: int, gateway: str, extra: list[str], timeout: float = 60
) -> LabDaemon:
    """A second dockerd on 127.0.0.1:``port`` with its own roots and bridge ``inft-<name>``."""
    if os.geteuid() != 0:
        raise LabError("the daemon-topology tests start a second dockerd: run them as root (CI does)")
    dockerd = need("dockerd")
    need("ip")
    if not port_is_free(port):
        raise LabError(f"port {port} is taken: the lab daemon {name!r} cannot listen there")
    root = base / name
    (root / "data").mkdir(parents=True)
    (root / "exec").mkdir()
    (root / "daemon.json").write_text("{}\n")
    bridge = f"inft-{name}"[:15]
    lab = LabDaemon(name, root, port, bridge)
    subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
    for argv in (
        ["ip", "link", "add", "name", bridge, "type", "bridge"],
        ["ip", "addr", "add", gateway, "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    argv = [
        dockerd,
        "--config-file", str(root / "daemon.json"),
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"),
        "--containerd-namespace", f"inft-{name}",
        "--containerd-plugins-namespace", f"inft-{name}-plugins",
        "--bridge", bridge,
        "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        "--cgroup-parent", f"inft-{name}",
        "-H", f"tcp://127.0.0.1:{port}",
        *extra,
    ]  # fmt: skip
    lab.argv = tuple(argv)
    with open(root / "dockerd.log", "wb") as log:
        lab.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while port_is_free(port):
        if lab.process.poll() is not None or time.monotonic() > deadline:
            tail = lab.log_tail()
            lab.stop()
            raise LabError(f"lab dockerd {name!r} did not start:\n{tail}")
        time.sleep(0.05)
    return lab


@dataclass(frozen=True)
class CertSet:
    """A CA and, under ``client``/``server``, the ca.pem, cert.pem and key.pem of each side."""

    root: Path

    @property
    def client(self) -> Path:
        return self.root / "client"

    @property
    def server(self) -> Path:
        return self.root / "server"


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run([need("openssl"), *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def make_certs(root: Path, cn: str = "infranode lab CA", client_days: int = 30) -> CertSet:
    """Like docker:dind's /certs: a CA, a server cert for IP:127.0.0.1 and DNS:docker (not
    localhost, on purpose), and a clientAuth client cert. ``client_days=-1`` makes it expired."""
    for sub in ("ca", "server", "client"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-out", "ca/key.pem", "2048", cwd=root)
    _openssl(
        "req",
        "-new",
        "-x509",
        "-days",
        "30",
        "-key",
        "ca/key.pem",
        "-subj",
        f"/CN={cn}",
        "-out",
        "ca/cert.pem",
        cwd=root,
    )
    for side, subject, ext, days in (
        ("server", "/CN=docker", "subjectAltName=IP:127.0.0.1,DNS:docker\nextendedKeyUsage=serverAuth\n", 30),
        ("client", "/CN=infranode lab client", "extendedKeyUsage=clientAuth\n", client_days),
    ):
        (root / side / "ext.cnf").write_text(ext)
        _openssl("genrsa", "-out", f"{side}/key.pem", "2048", cwd=root)
        _openssl(
            "req", "-new", "-key", f"{side}/key.pem", "-subj", subject, "-out", f"{side}/csr.pem", cwd=root
        )
        _openssl(
            "x509", "-req", "-days", str(days), "-in", f"{side}/csr.pem", "-CA", "ca/cert.pem",
            "-CAkey", "ca/key.pem", "-CAcreateserial", "-extfile", f"{side}/ext.cnf",
            "-out", f"{side}/cert.pem",
            cwd=root,
        )  # fmt: skip
        shutil.copy(root / "ca" / "cert.pem", root / side / "ca.pem")
        os.chmod(root / side / "key.pem", 0o600)
    return CertSet(root)


# --- ssh: a private sshd on loopback, and an isolated client HOME ----------------------------


@dataclass
class LabSshd:
    """``sshd`` on 127.0.0.1:``port`` with its own host key, config and authorized_keys, and a
    client ``home`` holding ``.ssh/{id_ed25519,config,known_hosts}``: export ``HOME=home`` for
    paramiko (docker-py's default ssh transport reads ``~/.ssh/config`` and ``known_hosts``)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        return _log_tail(self.root / "sshd.log", lines)

    def stop(self) -> None:
        _terminate(self.process, 10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_sshd(base: Path, port: int, timeout: float = 15) -> LabSshd:
    """A private sshd (foreground, so its PID is ours) that lets the lab's client key in as root."""
    if os.geteuid() != 0:
        raise LabError("the ssh topology test starts an sshd that logs in as root: run it as root (CI does)")
    sshd = "/usr/sbin/sshd"
    if not os.access(sshd, os.X_OK):
        raise LabError("the ssh topology test needs /usr/sbin/sshd (apt-get install openssh-server)")
    keygen = need("ssh-keygen")
    if not port_is_free(port):
        raise LabError(f"port {port} is taken: the lab sshd cannot listen there")
    root = base / "ssh"
    dot_ssh = root / "home" / ".ssh"
    dot_ssh.mkdir(parents=True)
    os.chmod(dot_ssh, 0o700)
    host_key, client_key = root / "ssh_host_ed25519_key", dot_ssh / "id_ed25519"
    for key, comment in ((host_key, "infranode-lab-host"), (client_key, "infranode-lab-client")):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            check=True,
            capture_output=True,
        )
    shutil.copy(f"{client_key}.pub", root / "authorized_keys")
    os.chmod(root / "authorized_keys", 0o644)
    (root / "sshd_config").write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "LogLevel VERBOSE\n"
        # accounts named inftnocli* log in to a PATH without the docker CLI (topology 6i)
        "Match User inftnocli*\n"
        '  ForceCommand env PATH=/nonexistent /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
    )
    (dot_ssh / "config").write_text(
        "Host 127.0.0.1 localhost\n"
        f"  Port {port}\n"
        f"  IdentityFile {client_key}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {dot_ssh}/known_hosts\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
    )
    host_pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    (dot_ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # the privilege-separation directory Debian's sshd wants
    lab = LabSshd(root, port)
    lab.process = subprocess.Popen(
        [sshd, "-D", "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while port_is_free(port):
        if lab.process.poll() is not None or time.monotonic() > deadline:
            tail = lab.log_tail()
            lab.stop()
            raise LabError(f"lab sshd did not start:\n{tail}")
        time.sleep(0.05)
    return lab


# --- another user: a throwaway account and an interpreter it may run ------------------------


IMPORT_PROBE = (
    "import sys, importlib, sysconfig\n"
    "importlib.import_module(sys.argv[1])\n"
    "std = sysconfig.get_paths()['stdlib']\n"
    "for name, mod in list(sys.modules.items()):\n"
    "    f = getattr(mod, '__file__', None) or ''\n"
    "    if '.' not in name and f and not f.startswith(std):\n"
    "        print(f)\n"
)


def python_for_other_users(dest: Path, module: str) -> tuple[str, Path]:
    """The system python and a library directory other users can read, holding the non-stdlib
    packages that ``import module`` loads here (copied from this interpreter: this venv and
    its base may sit under /root, mode 700). Far faster than a venv and pip install.

    :returns: (``/usr/bin/python3``, the directory for PYTHONPATH).
    """
    import sys

    system_python = "/usr/bin/python3"
    if not os.access(system_python, os.X_OK):
        raise LabError("the permission tests run the package as another user with /usr/bin/python3")
    same = subprocess.run(
        [system_python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    if same.stdout.strip() != str(tuple(sys.version_info[:2])):
        raise LabError(f"/usr/bin/python3 is {same.stdout.strip()}, this interpreter {sys.version_info[:2]}")
    files = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, module], capture_output=True, text=True, check=True
    ).stdout.split()
    lib = dest / "lib"
    lib.mkdir(parents=True)
    for name in files:
        path = Path(name)
        src = path.parent if path.name == "__init__.py" else path
        target = lib / src.name
        if target.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return system_python, lib


@dataclass
class ThrowawayUser:
    name: str

    def add_to_group(self, group: str) -> None:
        subprocess.run(["usermod", "-aG", group, self.name], check=True, capture_output=True)

    def run(
        self, argv: list[str], env: dict[str, str], *, login_groups: bool
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` as this user. ``login_groups``: with the groups /etc/group gives it now (a new
        login); otherwise with none but its own (a session older than a ``usermod -aG``)."""
        groups = "--init-groups" if login_groups else "--clear-groups"
        wrap = [need("setpriv"), "--reuid", self.name, "--regid", self.name, groups, "--"]
        return subprocess.run(wrap + argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    def remove(self) -> None:
        subprocess.run(["userdel", self.name], check=False, capture_output=True)


def throwaway_user(prefix: str = "inft", shell: str = "/usr/sbin/nologin") -> ThrowawayUser:
    """A new system user without a home (root only); remove it with ``.remove()``. Give it a real
    ``shell`` (``/bin/sh``) to let it log in through the lab sshd."""
    if os.geteuid() != 0:
        raise LabError("the permission tests create a user: run them as root (CI does)")
    need("useradd")
    name = f"{prefix}{os.getpid() % 100000}"
    subprocess.run(["userdel", name], check=False, capture_output=True)
    done = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", shell, name],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"useradd {name} failed: {done.stderr.strip()}")
    if shell != "/usr/sbin/nologin":
        # "!" (useradd's default) is a locked account, which sshd without PAM refuses even for a
        # key; "*" matches no password but is not locked
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return ThrowawayUser(name)
