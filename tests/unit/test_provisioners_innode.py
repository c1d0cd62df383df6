"""Puppet, Salt and Chef: command construction and reading what changed (no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners import chef
from pytest_infranode.provisioners import puppet
from pytest_infranode.provisioners import salt
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.settings import ProvisionerConfig


def cfg(tmp_path: Path, name: str, **options: object) -> ProvisionerConfig:
    return ProvisionerConfig(name=name, options=options, base_dir=tmp_path)


@pytest.mark.parametrize("cls", [puppet.PuppetProvisioner, salt.SaltProvisioner, chef.ChefProvisioner])
def test_satisfy_the_protocol(cls: type) -> None:
    assert isinstance(cls(), Provisioner)


# puppet
def test_puppet_apply_argv(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "site.pp").write_text("include web\n")
    (tmp_path / "modules").mkdir()
    config = cfg(tmp_path, "puppet", manifest="manifests/site.pp", modules="modules", args=["--noop"])
    puppet.validate(config)
    assert puppet.apply_argv("/usr/bin/puppet", config, diff=True) == [
        "/usr/bin/puppet",
        "apply",
        "--detailed-exitcodes",
        "--color=false",
        f"--modulepath={puppet.REMOTE}/modules",
        "--show_diff",
        "--noop",
        f"{puppet.REMOTE}/manifests/site.pp",
    ]


def test_puppet_detailed_exit_codes() -> None:
    assert puppet.status_of(0) == (0, False)
    assert puppet.status_of(2) == (0, True)
    assert puppet.status_of(4) == (4, False)
    assert puppet.status_of(6) == (6, True)
    assert puppet.status_of(1) == (1, False)


def test_puppet_changed_resources() -> None:
    output = (
        "Notice: Compiled catalog for n in environment production in 1.7 seconds\n"
        "Notice: /Stage[main]/Web/File[/srv/i.html]/content: content changed 'a' to 'b'\n"
        "Notice: /Stage[main]/Web/Package[nginx]/ensure: created\n"
        "Notice: Applied catalog in 0.81 seconds\n"
    )
    assert puppet.changed_resources(output) == [
        "changed: /Stage[main]/Web/File[/srv/i.html]: content: content changed 'a' to 'b'",
        "changed: /Stage[main]/Web/Package[nginx]: ensure: created",
    ]


def test_puppet_needs_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="`manifest` is required"):
        puppet.validate(cfg(tmp_path, "puppet"))
    with pytest.raises(SettingsError, match=r"file 'x\.pp' does not exist"):
        puppet.validate(cfg(tmp_path, "puppet", manifest="x.pp"))


# salt
def test_salt_call_argv(tmp_path: Path) -> None:
    (tmp_path / "salt").mkdir()
    config = cfg(tmp_path, "salt", states="salt", apply=["web", "db"])
    salt.validate(config)
    assert salt.call_argv("/usr/bin/salt-call", config) == [
        "/usr/bin/salt-call",
        "--local",
        "--retcode-passthrough",
        "--out=json",
        f"--file-root={salt.REMOTE}/states",
        f"--pillar-root={salt.REMOTE}/pillar",
        "state.apply",
        "web,db",
    ]
    assert salt.call_argv("salt-call", cfg(tmp_path, "salt", states="salt"))[-1] == "state.apply"


def test_salt_changed_states() -> None:
    data = {
        "local": {
            "file_|-/srv/www/index.html_|-/srv/www/index.html_|-managed": {
                "__id__": "/srv/www/index.html",
                "__run_num__": 1,
                "changes": {"diff": "-a\n+b"},
                "result": True,
            },
            "pkg_|-web_|-web_|-installed": {"__id__": "web", "__run_num__": 0, "changes": {}, "result": True},
        }
    }
    changes = salt.changed_states("[WARNING] noise\n" + json.dumps(data))
    assert len(changes) == 1
    assert changes[0].startswith("changed: /srv/www/index.html (file)\n")
    assert '"diff": "-a\\n+b"' in changes[0]
    assert salt.changed_states("not json") == []


def test_salt_needs_states(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="`states` is required"):
        salt.validate(cfg(tmp_path, "salt"))


# chef
def test_chef_client_argv(tmp_path: Path) -> None:
    (tmp_path / "cookbooks").mkdir()
    config = cfg(tmp_path, "chef", cookbooks="cookbooks", run_list=["recipe[web]", "recipe[db::server]"])
    chef.validate(config)
    assert chef.client_argv("/opt/cinc/bin/cinc-client", config) == [
        "/opt/cinc/bin/cinc-client",
        "--local-mode",
        "--chef-license",
        "accept-silent",
        "--no-color",
        "--config-option",
        f"cookbook_path={chef.REMOTE}/cookbooks",
        "--config-option",
        f"file_cache_path={chef.REMOTE}/cache",
        "-j",
        f"{chef.REMOTE}/attributes.json",
        "--override-runlist",
        "recipe[web],recipe[db::server]",
    ]
    assert chef.install_argv(config) == [
        "/bin/sh",
        "-c",
        "curl -fsSL https://omnitruck.cinc.sh/install.sh | bash",
    ]
    chef_cfg = cfg(tmp_path, "chef", cookbooks="cookbooks", run_list="recipe[web]", client="chef")
    assert "omnitruck.chef.io" in chef.install_argv(chef_cfg)[-1]


def test_chef_changed_resources() -> None:
    output = (
        "Recipe: web::default\n"
        "  * apt_package[nginx] action install\n"
        "    - install version 1.22 of package nginx\n"
        "  * file[/srv/www/index.html] action create (up to date)\n"
        "  * template[/etc/nginx/sites-available/site.conf] action create\n"
        "    - update content in file /etc/nginx/sites-available/site.conf\n"
        "\n"
        "Cinc Client finished, 2/3 resources updated in 10 seconds\n"
    )
    updated, changes = chef.changed_resources(output)
    assert updated == 2
    assert changes == [
        "changed: apt_package[nginx] action install\n  - install version 1.22 of package nginx",
        "changed: template[/etc/nginx/sites-available/site.conf] action create\n"
        "  - update content in file /etc/nginx/sites-available/site.conf",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "`cookbooks` is required"),
        ({"cookbooks": "cookbooks"}, "`run_list` is required"),
        ({"cookbooks": "cookbooks", "run_list": "recipe[a]", "client": "knife"}, "must be cinc or chef"),
        (
            {"cookbooks": "cookbooks", "run_list": "recipe[a]", "install": "curl"},
            "must be never or omnitruck",
        ),
    ],
)
def test_chef_validate(tmp_path: Path, options: dict[str, object], message: str) -> None:
    (tmp_path / "cookbooks").mkdir()
    with pytest.raises(SettingsError, match=message):
        chef.validate(cfg(tmp_path, "chef", **options))
