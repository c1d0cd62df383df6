"""A provisioner of your own, in a conftest.py: a name, ``check`` and ``converge``.

``check`` runs when pytest starts, before any node exists: raise SettingsError for bad options.
``converge`` runs once per node: do the work through ``node`` (run_argv, put_files) and stream
output to ``output``; return a ConvergeResult (``changed`` makes --infra-idempotence useful).
"""

from __future__ import annotations

from pytest_infranode import hookimpl
from pytest_infranode.errors import SettingsError
from pytest_infranode.provisioners import ConvergeResult


class MotdProvisioner:
    name = "motd"

    def check(self, config):
        if not isinstance(config.options.get("message"), str):
            raise SettingsError(
                "motd provisioner: `message` is required",
                where=config.source.where("provisioner.message"),
                fix="write `message: Hello` under `provisioner:`",
            )

    def converge(self, node, config, output):
        wanted = config.options["message"].encode() + b"\n"
        current = node.run_argv(["cat", "/etc/motd"]).stdout
        if current == wanted:
            output(b"motd already set\n")
            return ConvergeResult(0, "motd already set", changed=False)
        node.put_files("/etc", {"motd": (wanted, 0o644)})
        output(b"motd written\n")
        return ConvergeResult(0, "motd written", changed=True, changes=("changed: /etc/motd",))


@hookimpl
def pytest_infranode_add_provisioners():
    return [MotdProvisioner()]
