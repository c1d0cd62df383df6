"""A two-node system: `web` (the default node) and `db`, one network, reachable by name."""

import time
import urllib.request

import pytest


def test_web_serves_rows_from_db(host):
    assert host.service("web").is_running
    assert "rows-from-db" in host.file("/srv/web/index.html").content_string


@pytest.mark.infra_node("db")
def test_db_service_runs(host):
    assert host.service("db").is_running
    assert host.socket("tcp://0.0.0.0:8000").is_listening


@pytest.mark.infra_node("web")
def test_web_reaches_db_by_name(host):
    cmd = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://db:8000/\").read())'"
    assert "rows-from-db" in host.check_output(cmd)


@pytest.mark.infra_node(group="all")
def test_hostname_is_the_node_name(host, infra_node):
    assert host.check_output("hostname") == infra_node.short_name


def test_side_effect_ran_after_converge(infra_nodes):
    assert infra_nodes["web"].get_file("/srv/web/side-effect.txt") == b"side-effect-ran\n"


def test_runner_reaches_the_published_port(infra_nodes):
    address, port = infra_nodes["web"].port(80)
    for _ in range(50):  # the unit may still be binding its socket
        try:
            with urllib.request.urlopen(f"http://{address}:{port}/", timeout=2) as page:
                body = page.read().decode()
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise AssertionError(f"nothing answers on {address}:{port}")
    assert "multinode-demo" in body
    assert "rows-from-db" in body
