"""Multi-node settings, converge order, published-port resolution and request bodies. No daemon."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_infranode.engine.api import ContainerSpec
from pytest_infranode.engine.api import DaemonInfo
from pytest_infranode.engine.containers import create_kwargs
from pytest_infranode.engine.containers import parse_port_bindings
from pytest_infranode.engine.containers import runner_host
from pytest_infranode.errors import SettingsError
from pytest_infranode.settings import NodeConfig
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import Settings
from pytest_infranode.settings import build_settings
from pytest_infranode.settings import converge_order

DAEMON = DaemonInfo("unix:///var/run/docker.sock", "default", "20.10", "1.41", "1", "cgroupfs", "linux")


def _settings(tmp_path: Path, text: str) -> Settings:
    (tmp_path / "infranode.yaml").write_text(textwrap.dedent(text))
    return build_settings(RawOptions(), tmp_path)


def test_nodes_are_parsed_in_file_order(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        """
        provisioner: {name: shell, inline: ["true"]}
        nodes:
          web:
            groups: [front]
            ports: [80]
            env: {ROLE: web, PORT: 80}
            capabilities: [NET_ADMIN]
            depends_on: [db]
            side_effect: ["systemctl restart nginx"]
          db:
            provisioner: {name: shell, inline: ["echo db"]}
        """,
    )
    nodes = settings.nodes
    assert [n.name for n in nodes] == ["web", "db"]
    web = nodes[0]
    assert web == NodeConfig(
        name="web",
        groups=("front",),
        ports=(80,),
        env={"ROLE": "web", "PORT": "80"},
        capabilities=("NET_ADMIN",),
        depends_on=("db",),
        side_effect=("systemctl restart nginx",),
    )
    assert nodes[1].provisioner is not None
    assert nodes[1].provisioner.options == {"inline": ["echo db"]}


def test_without_nodes_there_are_none(tmp_path: Path) -> None:
    assert _settings(tmp_path, "provisioner: shell\n").nodes == ()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("nodes: [web, db]\n", "`nodes` must be a mapping"),
        ("nodes: {Web_1: {}}\n", "node name 'Web_1' is not allowed"),
        ("nodes: {web: {prots: [80]}}\n", "unknown setting 'nodes.web.prots'"),
        ("nodes: {web: {ports: [http]}}\n", "port 'http' of node 'web' is not a TCP port number"),
        ("nodes: {web: {ports: [70000]}}\n", "is not a TCP port number"),
        ("nodes: {web: {depends_on: [dbb]}, db: {}}\n", "node 'web' depends on 'dbb'"),
        ("nodes: {a: {depends_on: [b]}, b: {depends_on: [a]}}\n", "in a circle: a -> b -> a"),
        ("nodes: {web: 3}\n", "node 'web' must be a mapping"),
        ("nodes: {web: {hostname: Web_1}}\n", "hostname 'Web_1' of node 'web' is not a hostname"),
        ("nodes: {web: {hostname: -x.test}}\n", "hostname '-x.test' of node 'web' is not a hostname"),
        ("nodes: {web: {hostname: 8080}}\n", "hostname 8080 of node 'web' is not a hostname"),
        ("nodes: {web: {hostname: " + "a" * 64 + "}}\n", "is not a hostname"),
        (
            "nodes: {web: {hostname: db}, db: {}}\n",
            "hostname 'db' of node 'web' is the name of node 'db' too",
        ),
        (
            "nodes: {a: {hostname: x.test}, b: {hostname: x.test}}\n",
            "hostname 'x.test' of node 'b' is the hostname of node 'a' too",
        ),
    ],
)
def test_bad_nodes_are_refused_with_file_and_line(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        _settings(tmp_path, yaml_text)
    assert message in str(excinfo.value)
    assert "infranode.yaml" in str(excinfo.value)


def test_a_hostname_is_the_containers_and_one_more_alias(tmp_path: Path) -> None:
    from pytest_infranode.node import Node
    from pytest_infranode.platforms import BUILTIN_PLATFORMS

    settings = _settings(tmp_path, "nodes: {db: {hostname: db-1.example.test}, web: {hostname: web}}\n")
    db, web = settings.nodes
    assert (db.hostname, web.hostname) == ("db-1.example.test", "web")
    platform = next(p for p in BUILTIN_PLATFORMS if p.name == "debian-12")
    node = Node(None, platform, session_id="s", image="i", short_name="db", network="n", hostname=db.hostname)  # type: ignore[arg-type]
    assert node.spec.hostname == "db-1.example.test"
    assert node.spec.network_aliases == ("db", "db-1.example.test")
    plain = Node(None, platform, session_id="s", image="i", short_name="web", network="n")  # type: ignore[arg-type]
    assert (plain.spec.hostname, plain.spec.network_aliases) == ("web", ("web",))


def test_unknown_dependency_suggests_the_close_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        _settings(tmp_path, "nodes: {web: {depends_on: [dbb]}, db: {}}\n")
    assert "did you mean 'db'?" in excinfo.value.fix


def test_converge_order_keeps_file_order_otherwise() -> None:
    nodes = {
        "c": NodeConfig("c"),
        "a": NodeConfig("a", depends_on=("b",)),
        "b": NodeConfig("b"),
    }
    assert converge_order(nodes) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("unix:///var/run/docker.sock", "127.0.0.1"),
        ("npipe:////./pipe/docker_engine", "127.0.0.1"),
        ("tcp://10.1.2.3:2376", "10.1.2.3"),
        ("tcp://docker.example.org:2375", "docker.example.org"),
        ("ssh://ci@build-host", "build-host"),
        ("ssh://ci@build-host:2222", "build-host"),
        ("tcp://[fd00::5]:2376", "fd00::5"),
        ("tcp://localhost:2375", "127.0.0.1"),
    ],
)
def test_runner_host(endpoint: str, host: str) -> None:
    assert runner_host(endpoint) == host


def test_parse_port_bindings_keeps_tcp_with_a_host_port() -> None:
    ports = {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}, {"HostIp": "::", "HostPort": "49153"}],
        "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "49154"}],
        "443/tcp": None,
    }
    assert parse_port_bindings(ports, "10.0.0.9") == {80: ("10.0.0.9", 49153)}
    assert parse_port_bindings(None, "127.0.0.1") == {}


def test_create_kwargs_publish_ports_and_set_the_alias() -> None:
    spec = ContainerSpec(
        name="infranode-s-debian-12-web",
        image="img",
        hostname="web",
        labels={},
        network="infranode-s-debian-12",
        network_aliases=("web",),
        ports=(80, 8080),
        env={"ROLE": "web"},
    )
    kwargs = create_kwargs(spec, DAEMON)
    assert kwargs["hostname"] == "web"
    assert kwargs["network"] == "infranode-s-debian-12"
    assert kwargs["networking_config"] == {"infranode-s-debian-12": {"Aliases": ["web"]}}
    assert kwargs["ports"] == {"80/tcp": None, "8080/tcp": None}
    assert kwargs["environment"]["ROLE"] == "web"


def test_single_node_request_is_unchanged() -> None:
    spec = ContainerSpec(name="n", image="img", hostname="n", labels={})
    kwargs = create_kwargs(spec, DAEMON)
    assert "network" not in kwargs
    assert "ports" not in kwargs
    assert "networking_config" not in kwargs


def test_sysctls_are_text_keyed_by_the_kernel_name(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        """
        nodes:
          router:
            sysctls: {net.ipv4.ip_forward: '1', net/ipv6/conf/all/forwarding: 1, kernel.shmmax: '4096'}
        """,
    )
    assert settings.nodes[0].sysctls == {
        "net.ipv4.ip_forward": "1",
        "net.ipv6.conf.all.forwarding": "1",
        "kernel.shmmax": "4096",
    }


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("nodes: {web: {sysctls: [net.ipv4.ip_forward]}}\n", "sysctls of node 'web' must be a mapping"),
        ("nodes: {web: {sysctls: {vm.swappiness: '1'}}}\n", "sysctl 'vm.swappiness' of node 'web' is not"),
        ("nodes: {web: {sysctls: {kernel.hostname: x}}}\n", "sysctl 'kernel.hostname' of node 'web' is not"),
        ("nodes: {web: {sysctls: {'net.$(reboot)': '1'}}}\n", "sysctl 'net.$(reboot)' of node 'web' is not"),
        ("nodes: {web: {sysctls: {net: '1'}}}\n", "sysctl 'net' of node 'web' is not"),
        ("nodes: {web: {sysctls: {net.ipv4.ip_forward: true}}}\n", "must be text, not true"),
    ],
)
def test_bad_sysctls_are_refused_with_file_line_and_fix(tmp_path: Path, yaml_text: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        _settings(tmp_path, yaml_text)
    text = str(excinfo.value)
    assert message in text
    assert "infranode.yaml:1" in text
    assert "nodes.web.sysctls" in text
    assert ("quote it" in text) if "true" in yaml_text else ("`net.*`" in text or "write `sysctls:" in text)


def test_every_node_has_ipv6_on_its_loopback_and_its_own_sysctls_on_top() -> None:
    spec = ContainerSpec(name="n", image="img", hostname="n", labels={})
    assert create_kwargs(spec, DAEMON)["sysctls"] == {"net.ipv6.conf.lo.disable_ipv6": "0"}
    own = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.lo.disable_ipv6": "1"}
    kwargs = create_kwargs(ContainerSpec(name="n", image="img", hostname="n", labels={}, sysctls=own), DAEMON)
    assert kwargs["sysctls"] == own  # the user's value wins, even against the default
