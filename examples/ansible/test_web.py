"""The web server spec, converged by Ansible: ordinary testinfra checks, run once per platform."""


def test_nginx_is_installed(host):
    assert host.package("nginx").is_installed


def test_nginx_service_is_running_and_enabled(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_port_80_is_listening(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_site_config_is_templated_owned_and_private(host):
    conf = host.file("/etc/nginx/sites-available/site.conf")
    assert conf.contains("Managed by Ansible")
    assert conf.user == "root"
    assert conf.group == "www-data"
    assert conf.mode == 0o640


def test_default_site_is_disabled(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.file("/etc/nginx/sites-enabled/site.conf").is_symlink


def test_page_uses_group_and_extra_vars(host, infra_platform):
    page = host.check_output("curl -fsS http://localhost/")
    assert "Hello from infranode-demo" in page  # group_vars: all
    assert f"release 1.0 on {infra_platform.name}" in page  # extra_vars, inventory host = platform name


def test_header_uses_host_vars(host, infra_platform):
    headers = host.check_output("curl -fsSI http://localhost/")
    assert f"X-Served-By: infranode-{infra_platform.name}" in headers  # host_vars of this platform


def test_release_marker(host):
    assert host.file("/etc/site-release").content_string == "1.0\n"


def test_deploy_user_has_passwordless_sudo(host):
    assert host.user("deploy").exists
    assert host.run("su deploy -c 'sudo -n true'").rc == 0


def test_workers_run_as_www_data(host):
    assert host.process.filter(comm="nginx", user="www-data")
