from __future__ import annotations

import pytest

import pytest_infranode.errors
from pytest_infranode.errors import ConvergeError
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import DaemonUnreachable
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import InfranodeWarning
from pytest_infranode.errors import SettingsError
from pytest_infranode.errors import UnknownPlatform


def test_str_renders_what_where_fix_detail() -> None:
    err = InfranodeError(
        "the node stopped while booting",
        where="node infranode-x-debian-12",
        fix="raise --infra-boot-timeout",
        detail="--- log ---\nline 1\nline 2\n\n",
    )
    assert str(err) == (
        "the node stopped while booting\n"
        "  where: node infranode-x-debian-12\n"
        "  fix:   raise --infra-boot-timeout\n"
        "--- log ---\n"
        "line 1\n"
        "line 2"
    )
    assert err.args == ("the node stopped while booting",)


def test_str_leaves_out_empty_parts() -> None:
    assert str(InfranodeError("only what")) == "only what"
    assert str(SettingsError("bad", fix="do this")) == "bad\n  fix:   do this"
    assert str(DaemonUnreachable("down", where="unix:///x.sock")) == "down\n  where: unix:///x.sock"


def test_converge_error_includes_log_tail() -> None:
    err = ConvergeError(
        "converge failed with exit status 2",
        where="node n (platform debian-12)",
        fix="read the output below",
        exit_status=2,
        log_tail="E: Unable to locate package nginx-full\n",
    )
    assert err.exit_status == 2
    assert err.log_tail == "E: Unable to locate package nginx-full\n"
    assert str(err) == (
        "converge failed with exit status 2\n"
        "  where: node n (platform debian-12)\n"
        "  fix:   read the output below\n"
        "--- last lines of the converge output ---\n"
        "E: Unable to locate package nginx-full"
    )


def test_converge_error_without_tail() -> None:
    err = ConvergeError("provisioner not found")
    assert err.exit_status is None
    assert err.detail == ""
    assert str(err) == "provisioner not found"


def test_unknown_platform_is_a_settings_error() -> None:
    err = UnknownPlatform("x", known=["a", "b"], suggestions=[], where="here")
    assert isinstance(err, SettingsError)
    assert str(err) == (
        "unknown platform 'x'\n"
        "  where: here\n"
        "  fix:   Known platforms: a, b (list them with `infranode platforms`)"
    )


def test_can_be_raised_and_caught_by_branch() -> None:
    with pytest.raises(DaemonError, match="down"):
        raise DaemonUnreachable("down")


@pytest.mark.parametrize("name", pytest_infranode.errors.__all__)
def test_all_exported_classes(name: str) -> None:
    cls = getattr(pytest_infranode.errors, name)
    assert isinstance(cls, type)
    if name == "InfranodeWarning":
        assert issubclass(cls, UserWarning)
        assert not issubclass(cls, InfranodeError)
    else:
        assert issubclass(cls, InfranodeError)
        assert cls.__doc__


def test_all_lists_every_public_class() -> None:
    public = {
        name
        for name, value in vars(pytest_infranode.errors).items()
        if isinstance(value, type)
        and not name.startswith("_")
        and value.__module__ == "pytest_infranode.errors"
    }
    assert public == set(pytest_infranode.errors.__all__)
    assert InfranodeWarning.__name__ in public
