"""A web server spec: ordinary testinfra checks, run once per platform."""


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed


def test_nginx_service_is_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_port_80_is_listening(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_site_config_is_owned_and_private(host):
    conf = host.file("/etc/nginx/sites-available/site.conf")
    assert conf.is_file
    assert conf.user == "root"
    assert conf.group == "www-data"
    assert conf.mode == 0o640


def test_default_site_is_disabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.file("/etc/nginx/sites-enabled/site.conf").is_symlink


def test_nginx_config_is_valid(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr


def test_page_is_served(host):
    page = host.run("curl -fsS http://localhost/")
    assert page.rc == 0, page.stderr
    assert "Hello from infranode-demo" in page.stdout


def test_custom_header_is_sent(host):
    headers = host.check_output("curl -fsSI http://localhost/")
    assert "X-Served-By: infranode" in headers


def test_workers_run_as_www_data(host):
    workers = host.process.filter(comm="nginx", user="www-data")
    assert workers, "no nginx worker runs as www-data"


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_node_facts(host, infra_node, infra_platform):
    assert host.system_info.distribution == "debian"
    assert infra_node.platform is infra_platform
    assert host.check_output("hostname") == infra_node.name
