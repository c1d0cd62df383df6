"""Endpoint resolution like the docker CLI: order, sources, contexts, TLS files (no daemon)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pytest_infranode.engine import daemon
from pytest_infranode.engine.daemon import resolve_endpoint
from pytest_infranode.errors import DaemonError


def no_sockets(path: str) -> bool:
    return False


def only(*paths: str):  # type: ignore[no-untyped-def]
    def is_socket(path: str) -> bool:
        return path in paths

    return is_socket


def make_context(cfg: Path, name: str, host: str, *, tls: bool = False, skip_verify: bool = False) -> Path:
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = cfg / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": skip_verify}
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}})
    )
    tls_dir = cfg / "contexts" / "tls" / digest / "docker"
    if tls:
        tls_dir.mkdir(parents=True)
        for f in ("ca.pem", "cert.pem", "key.pem"):
            (tls_dir / f).write_text("x")
    return tls_dir


def test_context_id_is_sha256_of_the_name() -> None:
    assert daemon.context_id("lab-tls") == hashlib.sha256(b"lab-tls").hexdigest()


def test_explicit_wins_over_everything(tmp_path: Path) -> None:
    make_context(tmp_path, "ctx", "tcp://10.0.0.1:2375")
    env = {"DOCKER_HOST": "tcp://1.2.3.4:2375", "DOCKER_CONTEXT": "ctx", "DOCKER_CONFIG": str(tmp_path)}
    ep = resolve_endpoint("unix:///x.sock", env, home=str(tmp_path), is_socket=no_sockets)
    assert (ep.url, ep.source) == ("unix:///x.sock", "--infra-docker-host")


def test_docker_host_wins_over_context(tmp_path: Path) -> None:
    make_context(tmp_path, "ctx", "tcp://10.0.0.1:2375")
    env = {"DOCKER_HOST": "tcp://1.2.3.4:2375", "DOCKER_CONTEXT": "ctx", "DOCKER_CONFIG": str(tmp_path)}
    ep = resolve_endpoint(None, env, home=str(tmp_path), is_socket=no_sockets)
    assert (ep.url, ep.source, ep.tls) == ("tcp://1.2.3.4:2375", "DOCKER_HOST", None)


def test_docker_context_env(tmp_path: Path) -> None:
    make_context(tmp_path, "lab-tcp", "tcp://127.0.0.1:2375")
    env = {"DOCKER_CONTEXT": "lab-tcp", "DOCKER_CONFIG": str(tmp_path)}
    ep = resolve_endpoint(None, env, home="/nonexistent", is_socket=no_sockets)
    assert ep.url == "tcp://127.0.0.1:2375"
    assert ep.source == "context 'lab-tcp' (DOCKER_CONTEXT)"
    assert ep.context == "lab-tcp"
    assert ep.tls is None


def test_current_context_from_config_json_under_home(tmp_path: Path) -> None:
    cfg = tmp_path / ".docker"
    tls_dir = make_context(cfg, "lab-tls", "tcp://127.0.0.1:2376", tls=True)
    (cfg / "config.json").write_text(json.dumps({"currentContext": "lab-tls"}))
    ep = resolve_endpoint(None, {}, home=str(tmp_path), is_socket=no_sockets)
    assert ep.url == "tcp://127.0.0.1:2376"
    assert ep.source == f"context 'lab-tls' (currentContext in {cfg / 'config.json'})"
    assert ep.tls is not None
    assert ep.tls.ca == str(tls_dir / "ca.pem")
    assert ep.tls.verify


def test_docker_context_env_wins_over_config_json(tmp_path: Path) -> None:
    make_context(tmp_path, "a", "tcp://10.0.0.1:2375")
    make_context(tmp_path, "b", "tcp://10.0.0.2:2375")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "a"}))
    env = {"DOCKER_CONTEXT": "b", "DOCKER_CONFIG": str(tmp_path)}
    assert resolve_endpoint(None, env, is_socket=no_sockets).url == "tcp://10.0.0.2:2375"


def test_skip_tls_verify_context(tmp_path: Path) -> None:
    make_context(tmp_path, "insecure", "tcp://10.0.0.1:2376", tls=True, skip_verify=True)
    env = {"DOCKER_CONTEXT": "insecure", "DOCKER_CONFIG": str(tmp_path)}
    ep = resolve_endpoint(None, env, is_socket=no_sockets)
    assert ep.tls is not None
    assert not ep.tls.verify


@pytest.mark.parametrize("how", ["env", "config"])
def test_missing_context_is_an_error_not_a_fallback(tmp_path: Path, how: str) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path)}
    if how == "env":
        env["DOCKER_CONTEXT"] = "nope"
    else:
        (tmp_path / "config.json").write_text(json.dumps({"currentContext": "nope"}))
    with pytest.raises(DaemonError) as info:
        resolve_endpoint(None, env, is_socket=only("/var/run/docker.sock"))
    text = str(info.value)
    assert "docker context 'nope' does not exist" in text
    assert hashlib.sha256(b"nope").hexdigest() in text
    assert "docker context ls" in text


@pytest.mark.parametrize("name", ["x" * 100_000, "../../etc", "-H tcp://evil", "a b"])
def test_a_docker_context_that_is_no_context_name_is_refused_shortly(tmp_path: Path, name: str) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": name}
    with pytest.raises(DaemonError) as info:
        resolve_endpoint(None, env, is_socket=only("/var/run/docker.sock"))
    text = str(info.value)
    assert "is not a docker context name" in text
    assert "docker context ls" in text
    assert len(text) < 1000


def test_default_context_means_default_socket(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "default"}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    ep = resolve_endpoint(None, env, is_socket=only("/var/run/docker.sock"))
    assert (ep.url, ep.source) == ("unix:///var/run/docker.sock", "default socket")


def test_broken_config_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DaemonError, match=r"config.json cannot be read"):
        resolve_endpoint(None, {"DOCKER_CONFIG": str(tmp_path)}, is_socket=no_sockets)


def test_rootless_then_podman_sockets_after_the_default(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000", "DOCKER_CONFIG": str(tmp_path)}
    rootless = "/run/user/1000/docker.sock"
    podman_user = "/run/user/1000/podman/podman.sock"
    ep = resolve_endpoint(None, env, is_socket=only(rootless, podman_user))
    assert (ep.url, ep.source) == (f"unix://{rootless}", "rootless Docker socket")
    ep = resolve_endpoint(None, env, is_socket=only(podman_user, "/run/podman/podman.sock"))
    assert (ep.url, ep.source) == (f"unix://{podman_user}", "rootless Podman socket")
    ep = resolve_endpoint(None, env, is_socket=only("/run/podman/podman.sock"))
    assert (ep.url, ep.source) == ("unix:///run/podman/podman.sock", "Podman socket")
    ep = resolve_endpoint(None, env, is_socket=only("/var/run/docker.sock", rootless))
    assert ep.source == "default socket"


def test_nothing_found_names_the_default_socket(tmp_path: Path) -> None:
    ep = resolve_endpoint(None, {"DOCKER_CONFIG": str(tmp_path)}, is_socket=no_sockets)
    assert (ep.url, ep.source) == ("unix:///var/run/docker.sock", "default socket")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("docker:2375", "has no scheme"),
        ("tcp://", "has no host"),
        ("tcp://docker", "has no port"),
        ("tcp://docker:http", "invalid port"),
        ("foo://bar", "unknown scheme 'foo://'"),
        ("npipe:////./pipe/docker_engine", "only supported on Windows"),
        ("/var/run/docker.sock", "is a path"),
    ],
)
def test_malformed_docker_host(value: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(DaemonError) as info:
        resolve_endpoint(None, {"DOCKER_HOST": value, "DOCKER_CONFIG": str(tmp_path)}, is_socket=no_sockets)
    assert words in info.value.what
    assert f"DOCKER_HOST={value!r}" in info.value.what


def test_docker_host_without_scheme_gets_the_tcp_fix(tmp_path: Path) -> None:
    with pytest.raises(DaemonError) as info:
        resolve_endpoint(None, {"DOCKER_HOST": "docker:2375"}, home=str(tmp_path), is_socket=no_sockets)
    assert info.value.fix.startswith("use tcp://docker:2375")


@pytest.mark.parametrize("value", ["unix://", " "])
def test_empty_values_mean_the_default(value: str, tmp_path: Path) -> None:
    ep = resolve_endpoint(value if value.strip() else None, {"DOCKER_HOST": value}, home=str(tmp_path))
    assert ep.url == "unix:///var/run/docker.sock"


def test_tls_from_the_environment(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs/client"}
    ep = resolve_endpoint(None, env, home=str(tmp_path))
    assert ep.tls is not None
    assert (ep.tls.ca, ep.tls.cert, ep.tls.key) == (
        "/certs/client/ca.pem",
        "/certs/client/cert.pem",
        "/certs/client/key.pem",
    )
    assert ep.tls.origin == "DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=/certs/client"
    assert (ep.host, ep.port, ep.scheme) == ("docker", 2376, "tcp")


def test_tls_verify_zero_still_verifies_and_defaults_to_home(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_VERIFY": "0"}
    ep = resolve_endpoint(None, env, home=str(tmp_path))
    assert ep.tls is not None
    assert ep.tls.cert_dir == str(tmp_path / ".docker")


def test_no_tls_for_unix_sockets() -> None:
    env = {"DOCKER_HOST": "unix:///x.sock", "DOCKER_TLS_VERIFY": "1"}
    assert resolve_endpoint(None, env, home="/h").tls is None


def test_wait_defaults_and_env(tmp_path: Path) -> None:
    unix = resolve_endpoint(None, {"DOCKER_HOST": "unix:///x"}, home=str(tmp_path))
    tcp = resolve_endpoint(None, {"DOCKER_HOST": "tcp://h:2375"}, home=str(tmp_path))
    assert daemon._wait_seconds(unix, None, {}) == 10.0
    assert daemon._wait_seconds(tcp, None, {}) == 30.0
    assert daemon._wait_seconds(tcp, None, {daemon.WAIT_ENV: "2.5"}) == 2.5
    assert daemon._wait_seconds(tcp, 1.0, {daemon.WAIT_ENV: "2.5"}) == 1.0
    with pytest.raises(DaemonError, match="INFRANODE_DOCKER_WAIT='soon' is not a number"):
        daemon._wait_seconds(tcp, None, {daemon.WAIT_ENV: "soon"})
