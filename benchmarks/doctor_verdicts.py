"""How long ``infranode doctor`` takes to give its verdict, on each daemon topology built for real.

    python benchmarks/doctor_verdicts.py [--rounds N] [--dind]

Needs root, the host dockerd on /var/run/docker.sock with debian:12, and the lab tools that
``scripts/ensure-docker.sh --test-tools`` installs (a second dockerd, openssl, sshd, podman).
Every topology is started by the same lab helpers the integration tests use
(tests/integration/lab), measured, and torn down. For each row it prints the verdict (the first
failing check, or "ready") and the median wall time of ``doctor.run_doctor`` over N rounds with
``--wait 0``, then once with the default wait (what a user gets: 10 s for a socket that may be
starting, 30 s for tcp). Nothing here asserts a duration; the rows' words are asserted by
tests/integration/test_daemon_topologies.py, test_ssh.py, test_podman.py and test_permissions.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_infranode.engine import daemon  # noqa: E402
from pytest_infranode.engine import doctor  # noqa: E402
from tests.integration import lab  # noqa: E402
from tests.integration.lab import podman as lab_podman  # noqa: E402

TCP_PORT, TLS_PORT = 42475, 42486  # not the integration tests' ports: both may run at once


@dataclass
class Row:
    key: str
    topology: str
    env: dict[str, str]
    explicit: str | None = None
    runner: Callable[[float | None], dict[str, object]] | None = None  # out of process


def base_env(work: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    cfg = Path(tempfile.mkdtemp(prefix="cfg-", dir=work))
    return {**keep, "DOCKER_CONFIG": str(cfg), **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verdict(report: doctor.Report) -> str:
    failed = [f for f in report.findings if f.status == "fail"]
    return failed[0].summary if failed else "ready"


def in_process(row: Row, wait: float | None) -> dict[str, object]:
    if "HOME" in row.env:  # paramiko reads $HOME/.ssh from os.environ
        os.environ["HOME"] = row.env["HOME"]
    started = time.perf_counter()
    report = doctor.run_doctor(row.explicit, row.env, wait=wait)
    return {"seconds": time.perf_counter() - started, "verdict": verdict(report), "ok": report.ok}


DOCTOR_JSON = """
import json, sys, time
{prelude}
from pytest_infranode.engine import doctor
wait = None if sys.argv[1] == "default" else float(sys.argv[1])
started = time.perf_counter()
report = doctor.run_doctor(None, wait=wait)
failed = [f.summary for f in report.findings if f.status == "fail"]
print(json.dumps({{"seconds": time.perf_counter() - started, "verdict": failed[0] if failed else "ready",
                  "ok": report.ok}}))
"""


def out_of_process(
    argv_prefix: list[str], env: dict[str, str], prelude: str = ""
) -> Callable[..., dict[str, object]]:
    def run(wait: float | None) -> dict[str, object]:
        code = DOCTOR_JSON.format(prelude=prelude)
        arg = "default" if wait is None else str(wait)
        done = subprocess.run(
            [*argv_prefix, "-c", code, arg], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"doctor subprocess failed: {done.stderr[-1500:]}")
        result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    return run


@contextmanager
def late_socket(path: Path, delay: float) -> Iterator[None]:
    """A unix socket that appears after ``delay`` seconds and relays to the host daemon."""
    stop = threading.Event()

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve() -> None:
        time.sleep(delay)
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen(16)
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            up = socket.socket(socket.AF_UNIX)
            up.connect("/var/run/docker.sock")
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()
        srv.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        path.unlink(missing_ok=True)


def context(env: dict[str, str], name: str, host: str, tls: Path | None = None) -> dict[str, str]:
    """A docker context stored the way ``docker context create`` stores it; env selects it."""
    cfg = Path(env["DOCKER_CONFIG"])
    meta = cfg / "contexts" / "meta" / daemon.context_id(name)
    meta.mkdir(parents=True)
    endpoint: dict[str, object] = {"Host": host, "SkipTLSVerify": False}
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}})
    )
    if tls is not None:
        store = cfg / "contexts" / "tls" / daemon.context_id(name) / "docker"
        store.mkdir(parents=True)
        for name_ in ("ca.pem", "cert.pem", "key.pem"):
            shutil.copy(tls / name_, store / name_)
    return {**env, "DOCKER_CONTEXT": name}


def build_rows(work: Path, stack: ExitStack, with_dind: bool) -> list[Row]:
    rows: list[Row] = []
    add = rows.append
    add(Row("1", "local unix socket", base_env(work)))
    add(
        Row(
            "2a",
            "DOCKER_HOST names a missing socket",
            base_env(work, DOCKER_HOST=f"unix://{work}/missing.sock"),
        )
    )
    nons = out_of_process(
        ["unshare", "-m", "--", "sh", "-c", 'mount -t tmpfs none /run && exec "$0" "$@"', sys.executable],
        {**base_env(work), "PYTHONPATH": str(ROOT)},
    )
    add(Row("2b", "no DOCKER_HOST and no /var/run/docker.sock", {}, runner=nons))
    stale = work / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    add(Row("2c", "stale socket (nobody listening)", base_env(work, DOCKER_HOST=f"unix://{stale}")))
    (work / "notasock").write_text("")
    add(Row("2d", "path is a regular file", base_env(work, DOCKER_HOST=f"unix://{work}/notasock")))
    add(Row("2e", "tcp, nothing listening", base_env(work, DOCKER_HOST=f"tcp://127.0.0.1:{free_port()}")))
    add(
        Row(
            "2f",
            "host does not resolve (GitLab, no service)",
            base_env(work, DOCKER_HOST="tcp://docker:2375", GITLAB_CI="true"),
        )
    )
    add(Row("2g", "malformed DOCKER_HOST", base_env(work, DOCKER_HOST="docker:2375")))

    # 3a/3c: a throwaway user runs the doctor on the system python
    users = work / "users"
    users.mkdir()
    work.chmod(0o755)
    python, libdir = lab.python_for_other_users(users, "pytest_infranode.engine.doctor")
    home = users / "home"
    home.mkdir(mode=0o777)
    user_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "PYTHONPATH": str(libdir)}
    user = lab.throwaway_user("inftbench")
    stack.callback(user.remove)
    wrap = [lab.need("setpriv"), "--reuid", user.name, "--regid", user.name]
    add(
        Row(
            "3a",
            "socket exists, user not in its group",
            {},
            runner=out_of_process([*wrap, "--clear-groups", "--", python, "-s"], user_env),
        )
    )
    socket_group = __import__("grp").getgrgid(os.stat("/var/run/docker.sock").st_gid).gr_name
    listed = lab.throwaway_user("inftbenchg")
    stack.callback(listed.remove)
    subprocess.run(["usermod", "-aG", socket_group, listed.name], check=True, capture_output=True)
    as_listed = [lab.need("setpriv"), "--reuid", listed.name, "--regid", listed.name]
    wrap_listed = [*as_listed, "--clear-groups", "--"]  # the login from before usermod
    wrap_listed_fresh = [*as_listed, "--init-groups", "--"]  # a new login
    add(
        Row(
            "3b",
            f"user in '{socket_group}' (a fresh login)",
            {},
            runner=out_of_process([*wrap_listed_fresh, python, "-s"], user_env),
        )
    )
    add(
        Row(
            "3c",
            f"listed in '{socket_group}', login predates it",
            {},
            runner=out_of_process([*wrap_listed, python, "-s"], user_env),
        )
    )

    tcp = lab.start_dockerd("bench-tcp", work, TCP_PORT, "172.30.97.1/24", [])
    stack.callback(tcp.stop)
    certs = lab.make_certs(work / "certs")
    srv = certs.server
    tls = lab.start_dockerd(
        "bench-tls", work, TLS_PORT, "172.30.98.1/24",
        ["--tlsverify", "--tlscacert", f"{srv}/ca.pem",
         "--tlscert", f"{srv}/cert.pem", "--tlskey", f"{srv}/key.pem"],
    )  # fmt: skip
    stack.callback(tls.stop)

    def tls_env(url: str, cert_dir: Path, **extra: str) -> dict[str, str]:
        return base_env(work, DOCKER_HOST=url, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(cert_dir), **extra)

    add(Row("4", "plain TCP (second dockerd)", base_env(work, DOCKER_HOST=tcp.url)))
    add(
        Row(
            "4h",
            "plain TCP with HTTP_PROXY set",
            base_env(work, DOCKER_HOST=tcp.url, HTTP_PROXY="http://127.0.0.1:9"),
        )
    )
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    add(Row("5", "TLS (REQUESTS_CA_BUNDLE set)", tls_env(tls.url, certs.client, REQUESTS_CA_BUNDLE=bundle)))
    empty = work / "nocerts"
    empty.mkdir()
    add(Row("5b", "TLS_VERIFY=1, no certificates", tls_env(tls.url, empty, GITLAB_CI="true")))
    other = lab.make_certs(work / "other", cn="some other CA")
    wrong_ca, wrong_client = work / "wrong-ca", work / "wrong-client"
    for d in (wrong_ca, wrong_client):
        d.mkdir()
    shutil.copy(other.client / "ca.pem", wrong_ca / "ca.pem")
    shutil.copy(certs.client / "ca.pem", wrong_client / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(certs.client / name, wrong_ca / name)
        shutil.copy(other.client / name, wrong_client / name)
    add(Row("5e", "TLS, wrong CA", tls_env(tls.url, wrong_ca)))
    add(Row("5f", "TLS, client cert from another CA", tls_env(tls.url, wrong_client)))
    expired = lab.make_certs(work / "expired", client_days=-1)
    add(Row("5f'", "TLS, expired client cert", tls_env(tls.url, expired.client)))
    add(Row("5g", "TLS, hostname mismatch", tls_env(f"tcp://localhost:{TLS_PORT}", certs.client)))
    add(Row("5h", "TLS client, plain port", tls_env(tcp.url, certs.client)))
    add(Row("5i", "plain client, TLS port", base_env(work, DOCKER_HOST=tls.url)))
    add(
        Row(
            "5m",
            "GitLab 2375/2376 mix-up",
            base_env(work, DOCKER_HOST=f"tcp://127.0.0.1:{TLS_PORT - 1}", GITLAB_CI="true"),
        )
    )

    sshd = lab.start_sshd(work, free_port())
    stack.callback(sshd.stop)

    def ssh_env(home_dir: Path, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(home_dir),
            "DOCKER_CONFIG": str(home_dir / "dockercfg"),
            **extra,
        }

    add(Row("6", "ssh:// (paramiko)", ssh_env(sshd.home, DOCKER_HOST=sshd.url)))
    add(Row("6c", "ssh://, paramiko not installed", {}, runner=out_of_process(
        [sys.executable],
        {**ssh_env(sshd.home, DOCKER_HOST=sshd.url), "PYTHONPATH": os.pathsep.join(sys.path)},
        prelude='sys.modules["paramiko"] = None',
    )))  # fmt: skip
    unknown = work / "home-unknown"
    (unknown / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(sshd.home / ".ssh" / "id_ed25519", unknown / ".ssh" / "id_ed25519")
    add(Row("6d", "ssh://, host key unknown", ssh_env(unknown, DOCKER_HOST=sshd.url)))
    changed = work / "home-changed"
    shutil.copytree(unknown, changed)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "otherhost")],
        check=True,
        capture_output=True,
    )
    pub = " ".join((work / "otherhost.pub").read_text().split()[:2])
    (changed / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {pub}\n")
    add(Row("6d'", "ssh://, host key changed", ssh_env(changed, DOCKER_HOST=sshd.url)))
    refused = work / "home-refused"
    (refused / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(sshd.home / ".ssh" / "known_hosts", refused / ".ssh" / "known_hosts")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(refused / ".ssh" / "id_ed25519")],
        check=True,
        capture_output=True,
    )
    add(Row("6f", "ssh://, key not authorized", ssh_env(refused, DOCKER_HOST=sshd.url)))
    add(
        Row(
            "6g",
            "ssh://, no sshd on the port",
            ssh_env(sshd.home, DOCKER_HOST=f"ssh://root@127.0.0.1:{free_port()}"),
        )
    )
    remote = lab.throwaway_user("inftbenchs", shell="/bin/sh")
    stack.callback(remote.remove)
    add(
        Row(
            "6h",
            "ssh://, remote user not in docker",
            ssh_env(sshd.home, DOCKER_HOST=f"ssh://{remote.name}@127.0.0.1:{sshd.port}"),
        )
    )

    nocli = lab.throwaway_user("inftnocli", shell="/bin/sh")  # the lab sshd empties its PATH
    stack.callback(nocli.remove)
    nocli_url = f"ssh://{nocli.name}@127.0.0.1:{sshd.port}"
    add(Row("6i", "ssh://, no docker CLI on the remote PATH", ssh_env(sshd.home, DOCKER_HOST=nocli_url)))

    add(Row("7", "context -> tcp", context(base_env(work), "bench-tcp", tcp.url)))
    add(
        Row(
            "7'", "context -> TLS (stored certs)", context(base_env(work), "bench-tls", tls.url, certs.client)
        )
    )
    add(Row("7''", "context -> ssh", context(ssh_env(sshd.home), "bench-ssh", sshd.url)))
    add(Row("7m", "context that does not exist", base_env(work, DOCKER_CONTEXT="nope")))

    podman = lab_podman.start_podman(Path(tempfile.mkdtemp(prefix="inft-bpm-")), ["debian:12"], "runc")
    stack.callback(shutil.rmtree, podman.root.parent, ignore_errors=True)
    stack.callback(podman.stop)
    add(Row("8", "Podman API socket", base_env(work, DOCKER_HOST=podman.url)))

    if with_dind:
        from tests.integration import test_example_on_remote_daemons as remote_tests

        image = stack.enter_context(remote_tests.dind_image(work / "dind"))
        for key, mode in (("9", "tcp"), ("9'", "tls")):
            dind = stack.enter_context(remote_tests.start_dind(image, mode, certs, f"inft-bench-dind-{mode}"))
            add(Row(key, f"docker-in-docker, no --privileged, {mode}", base_env(work, **dind.env())))

    late = work / "late.sock"
    add(Row("10", "socket appears 2 s late (daemon starting)", base_env(work, DOCKER_HOST=f"unix://{late}")))
    return rows


def measure(row: Row, wait: float | None, work: Path) -> dict[str, object]:
    if row.key == "10":
        late = Path(row.env["DOCKER_HOST"].removeprefix("unix://"))
        with late_socket(late, 2.0):
            return in_process(row, wait)
    return row.runner(wait) if row.runner else in_process(row, wait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dind", action="store_true", help="also docker-in-docker (builds an image, ~30 s)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("doctor_verdicts: needs root (it starts lab daemons and users)", file=sys.stderr)
        return 2
    home = os.environ.get("HOME", "")
    work = Path(tempfile.mkdtemp(prefix="inft-dv-"))
    lines: list[str] = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(os.environ.__setitem__, "HOME", home)
        rows = build_rows(work, stack, args.dind)
        head = f"{'#':<5} {'topology':<44} {'--wait 0':>9} {'default':>9}  verdict"
        lines += [head, "-" * 120]
        for row in rows:
            runs = []
            for _ in range(args.rounds):
                wait = 15.0 if row.key == "10" else 0.0  # row 10 is only meaningful with a wait
                runs.append(measure(row, wait, work))
            default = measure(row, None, work)
            med = statistics.median(float(str(r["seconds"])) for r in runs)
            text, took = str(default["verdict"]), float(str(default["seconds"]))
            lines.append(f"{row.key:<5} {row.topology:<44} {med:>8.2f}s {took:>8.2f}s  {text}")
            print(lines[-1], flush=True)
    print()
    print(
        f"doctor verdicts: median of {args.rounds} with --wait 0 (row 10: 15), "
        "then once with the default wait"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
