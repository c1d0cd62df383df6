"""The audit of every provisioner option and environment variable the plugin reads (#20): empty
values, names that are no names, YAML's floats where a release is wanted, shell words in a user,
huge values. Each is refused naming the key (or the variable) and the fix. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_infranode.engine import daemon
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners._common import clipped
from pytest_infranode.provisioners._common import env_problem
from pytest_infranode.provisioners._common import user_problem
from pytest_infranode.provisioners.ansible import AnsibleProvisioner
from pytest_infranode.provisioners.chef import ChefProvisioner
from pytest_infranode.provisioners.puppet import PuppetProvisioner
from pytest_infranode.provisioners.pyinfra import PyinfraProvisioner
from pytest_infranode.provisioners.salt import SaltProvisioner
from pytest_infranode.provisioners.salt import salt_version
from pytest_infranode.provisioners.shell import ShellProvisioner
from pytest_infranode.provisioners.shell import _env
from pytest_infranode.settings import ProvisionerConfig
from pytest_infranode.settings import Source

BIG = "x" * 100_000
PROVISIONERS: dict[str, Any] = {
    "ansible": (AnsibleProvisioner, {"playbook": "site.yml"}),
    "pyinfra": (PyinfraProvisioner, {"deploy": "deploy.py"}),
    "salt": (SaltProvisioner, {"states": "states"}),
    "puppet": (PuppetProvisioner, {"manifest": "manifests/site.pp"}),
    "chef": (ChefProvisioner, {"cookbooks": "cookbooks", "run_list": ["recipe[web]"]}),
    "shell": (ShellProvisioner, {"script": "s.sh"}),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "deploy.py").write_text("")
    (tmp_path / "s.sh").write_text("true\n")
    for folder in ("states", "cookbooks/web/recipes", "manifests"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "manifests/site.pp").write_text("")
    return tmp_path


def check(project: Path, name: str, **options: Any) -> None:
    cls, required = PROVISIONERS[name]
    source = Source(path=project / "infranode.yaml", lines={"provisioner": 3})
    cls().check(ProvisionerConfig(name, {**required, **options}, project, source))


# (provisioner, key, value, words the message must have)
REFUSED = [
    ("ansible", "user", "", "`user` is empty"),
    ("ansible", "user", "root; rm -rf /", "is no user name"),
    ("ansible", "user", "-oProxyCommand=x", "is no user name"),
    ("ansible", "user", BIG, "(100000 characters)"),
    ("ansible", "extra_vars", {"a b": 1}, "`extra_vars` names 'a b', which is no variable name"),
    ("ansible", "extra_vars", {"": 1}, "no variable name"),
    ("ansible", "env", {"A=B": "x"}, "'A=B' is no environment variable name"),
    ("ansible", "env", {"1A": "x"}, "is no environment variable name"),
    ("ansible", "env", {"A": "x\0y"}, "NUL byte"),
    ("ansible", "args", "", "`args` is empty"),
    ("ansible", "args", ["-v", ""], "`args` holds an empty string"),
    ("ansible", "idempotence_skip_tags", "", "is empty"),
    ("ansible", "groups", ["web servers"], "'web servers' is no Ansible group name"),
    ("ansible", "groups", {"web,db": ["debian-12"]}, "is no Ansible group name"),
    ("ansible", "playbook", "", "`playbook` is empty"),
    ("ansible", "roles_path", "", "`roles_path` is empty"),
    ("pyinfra", "data", {"a b": 1}, "no variable name"),
    ("pyinfra", "env", {"": "x"}, "no environment variable name"),
    ("pyinfra", "deploy", [""], "holds an empty string"),
    ("salt", "version", 3007.10, "not 3007.1"),
    ("salt", "version", True, "not true"),
    ("salt", "version", "", "not ''"),
    ("salt", "version", "3007; rm -rf /", "Salt release"),
    ("salt", "version", BIG, "(100000 characters)"),
    ("salt", "states", "", "`states` is empty"),
    ("salt", "pillar", "", "`pillar` is empty"),
    ("salt", "apply", [""], "holds an empty string"),
    ("puppet", "facts", {"role": True}, "`facts.role` must be a string, not true"),
    ("puppet", "facts", {"tier": 3.10}, "not 3.1"),
    ("puppet", "facts", {"a=b": "x"}, "no variable name"),
    ("puppet", "manifest", "", "is empty"),
    ("puppet", "modules", "", "is empty"),
    ("chef", "run_list", "", "is empty"),
    ("chef", "run_list", [""], "holds an empty string"),
    ("chef", "cookbooks", "", "is empty"),
    ("chef", "client", "", "is empty"),
    ("shell", "user", "", "is no user name"),
    ("shell", "user", "root; rm", "is no user name"),
    ("shell", "user", "-u", "is no user name"),
    ("shell", "env", {"A=B": "x"}, "no environment variable name"),
    ("shell", "env", {"DEBUG": True}, "`env.DEBUG` must be a string, not true"),
    ("shell", "inline", "", "`inline` is empty"),
    ("shell", "inline", ["true", " "], "`inline` holds an empty string"),
    ("shell", "script", "", "`script` is empty"),
]


@pytest.mark.parametrize(
    ("provisioner", "key", "value", "said"),
    REFUSED,
    ids=[f"{p}.{k}={clipped(str(v))[:20]}" for p, k, v, _ in REFUSED],
)
def test_a_hostile_option_is_refused_naming_it(
    project: Path, provisioner: str, key: str, value: Any, said: str
) -> None:
    with pytest.raises(SettingsError) as err:
        check(project, provisioner, **{key: value})
    text = str(err.value)
    assert said in text
    assert f"provisioner.{key}" in text  # where: the key, in the configuration file
    assert str(project / "infranode.yaml") in text
    assert err.value.fix, "and how to fix it"
    assert len(text) < 2000, "a huge value is not echoed whole"


@pytest.mark.parametrize(
    ("provisioner", "options"),
    [
        ("ansible", {"user": "deploy", "env": {"APP_PORT": 8080}, "groups": ["web_servers", "web-servers"]}),
        ("ansible", {"user": "1000:1000", "extra_vars": {"port": 80, "_x": [1]}}),
        ("salt", {"version": "3007.14"}),
        ("salt", {"version": 3007}),
        ("salt", {"version": "3007.0rc1"}),
        ("puppet", {"facts": {"role": "web", "port": 80}}),
        ("shell", {"user": "www-data", "env": {"A_1": "x y; z"}}),
    ],
)
def test_good_options_still_pass(project: Path, provisioner: str, options: dict[str, Any]) -> None:
    check(project, provisioner, **options)


def test_a_quoted_salt_version_is_kept_as_written(project: Path) -> None:
    from pytest_infranode.provisioners.salt import _options

    config = ProvisionerConfig("salt", {"states": "states", "version": "3007.10"}, project)
    assert salt_version(_options(config)) == "3007.10"


def test_shell_env_values_are_the_text_written(project: Path) -> None:
    config = ProvisionerConfig("shell", {"env": {"PORT": 80, "NAME": "a b"}}, project)
    assert _env(config) == {"PORT": "80", "NAME": "a b"}


def test_user_and_env_rules() -> None:
    assert user_problem("app") == user_problem("1000") == user_problem("app:adm") == ""
    assert user_problem("a" * 33)
    assert user_problem("app:")
    assert user_problem("$(id)")
    assert env_problem("PATH", "/bin") == ""
    assert env_problem("A-B", "x")
    assert env_problem("A", "\0")


@pytest.mark.parametrize("raw", ["nan", "inf", "-5", "1e12", "abc", "3601"])
def test_infranode_docker_wait_outside_0_to_an_hour_is_refused(raw: str) -> None:
    endpoint = daemon.Endpoint("unix:///var/run/docker.sock", "default socket")
    with pytest.raises(DaemonError) as err:
        daemon._wait_seconds(endpoint, None, {"INFRANODE_DOCKER_WAIT": raw})
    assert "INFRANODE_DOCKER_WAIT" in str(err.value)
    assert "from 0 to 3600" in str(err.value)
    assert err.value.where == "INFRANODE_DOCKER_WAIT"


def test_infranode_docker_wait_in_range_is_taken() -> None:
    endpoint = daemon.Endpoint("unix:///var/run/docker.sock", "default socket")
    assert daemon._wait_seconds(endpoint, None, {"INFRANODE_DOCKER_WAIT": " 2.5 "}) == 2.5
    assert daemon._wait_seconds(endpoint, None, {"INFRANODE_DOCKER_WAIT": "0"}) == 0


def test_a_huge_docker_host_is_refused_without_echoing_it() -> None:
    with pytest.raises(DaemonError) as err:
        daemon.resolve_endpoint(None, {"DOCKER_HOST": "tcp://" + BIG}, home="/nonexistent")
    assert "DOCKER_HOST is 100006 characters long" in str(err.value)
    assert len(str(err.value)) < 1000
