"""The pyinfra provisioner's pure parts: command line, results table, checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners import pyinfra
from pytest_infranode.provisioners.base import Provisioner
from pytest_infranode.settings import ProvisionerConfig

RESULTS = """\
--> Beginning operation run...
    [@infranode/abc] Success

--> Results:
    Operation                   Hosts   Success   Error   No Change
    Install nginx and curl      1       -         -       1
    Home page                   1       1         -       -
    Site enabled                1       -         1       -
    Grand total                 3       1         1       1

--> Disconnecting from hosts...
"""


def config(tmp_path: Path, **options: object) -> ProvisionerConfig:
    (tmp_path / "deploy.py").write_text("")
    options.setdefault("deploy", "deploy.py")
    return ProvisionerConfig(name="pyinfra", options=options, base_dir=tmp_path)


def test_satisfies_the_protocol() -> None:
    assert isinstance(pyinfra.PyinfraProvisioner(), Provisioner)


def test_results_table_gives_changed_operations_and_errors() -> None:
    assert pyinfra.read_results(RESULTS) == (["changed: Home page"], 1)
    assert pyinfra.read_results("no table here") == ([], 0)


def test_argv_targets_the_infranode_connector(tmp_path: Path) -> None:
    cfg = config(tmp_path, data={"site": "a b"}, sudo=True, args=["--serial"])
    argv = pyinfra.pyinfra_argv("/venv/bin/pyinfra", "c0ffee", cfg, diff=True)
    assert argv == [
        "/venv/bin/pyinfra",
        "-y",
        "--no-wait",
        "--data",
        "site=a b",
        "--sudo",
        "--diff",
        "--serial",
        "@infranode/c0ffee",
        str(tmp_path / "deploy.py"),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"deploy": None}, "`deploy` is required"),
        ({"deploy": "nope.py"}, "file 'nope.py' does not exist"),
        ({"dat": {}}, "unknown option 'dat'"),
        ({"sudo": "yes"}, "`sudo` must be true or false"),
    ],
)
def test_validate_names_the_setting(tmp_path: Path, options: dict[str, object], message: str) -> None:
    cfg = config(tmp_path, **options)
    if options.get("deploy", "") is None:
        cfg = ProvisionerConfig(name="pyinfra", options={}, base_dir=tmp_path)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        pyinfra.validate(cfg)


def test_connector_is_registered_for_pyinfra() -> None:
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="pyinfra.connectors") if e.name == "infranode"]
    assert [e.value for e in found] == ["pytest_infranode.provisioners.pyinfra_connector:InfranodeConnector"]


@pytest.mark.parametrize(
    ("value", "wanted"),
    [(None, True), ("", True), ("true", True), ("1", True), ("false", False), (" OFF ", False), ("0", False)],
)
def test_the_exec_channel_is_on_unless_the_variable_says_false(value: str | None, wanted: bool) -> None:
    # pyinfra first, as its CLI does: pyinfra 3.0 loads every connector's entry point while it
    # initialises, and the connector module imported first would then be importing itself.
    import pyinfra.api  # noqa: F401

    from pytest_infranode.provisioners.pyinfra_connector import CHANNEL_ENV
    from pytest_infranode.provisioners.pyinfra_connector import channel_wanted

    environ = {} if value is None else {CHANNEL_ENV: value}
    assert channel_wanted(environ) is wanted
