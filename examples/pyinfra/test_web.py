"""The web server spec, converged by pyinfra: ordinary testinfra checks, run once per platform."""


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
    assert conf.contains("Managed by pyinfra")
    assert conf.user == "root"
    assert conf.group == "www-data"
    assert conf.mode == 0o640


def test_default_site_is_disabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.file("/etc/nginx/sites-enabled/site.conf").is_symlink


def test_nginx_config_is_valid(host):
    assert host.run("nginx -t").rc == 0


def test_page_uses_deploy_data(host):
    assert "Hello from infranode-demo" in host.check_output("curl -fsS http://localhost/")


def test_custom_header_is_sent(host):
    assert "X-Served-By: pyinfra" in host.check_output("curl -fsSI http://localhost/")


def test_workers_run_as_www_data(host):
    assert host.process.filter(comm="nginx", user="www-data")
