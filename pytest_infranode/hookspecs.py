"""Hook specifications of pytest-infranode, added to pytest by ``pytest_addhooks``.

Implement them in a ``conftest.py`` or in a plugin (its own ``pytest11`` entry point). Plugins
that may run without pytest-infranode installed should mark their implementations
``optionalhook=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import pluggy

if TYPE_CHECKING:
    from pytest_infranode.node import Node
    from pytest_infranode.platforms import Platform
    from pytest_infranode.provisioners.base import ConvergeResult
    from pytest_infranode.provisioners.base import OutputSink
    from pytest_infranode.provisioners.base import Provisioner
    from pytest_infranode.settings import ProvisionerConfig

hookspec = pluggy.HookspecMarker("pytest")
hookimpl = pluggy.HookimplMarker("pytest")
"""Marker for implementations of these hooks (the same as ``pytest.hookimpl``)."""


@hookspec
def pytest_infranode_add_platforms() -> list[Platform]:
    """Contribute platforms to the catalog.

    Called once, at configure time, before any platform name is looked up.

    :return: a list of :class:`~pytest_infranode.Platform`; their names must not clash with
        built-in platforms or those of other plugins (a clash names both and stops the session).
        Return an empty list (or None) to add nothing.

    May be implemented in plugins and in the rootdir's ``conftest.py``.

    .. versionadded:: 0.1
    """


@hookspec
def pytest_infranode_add_provisioners() -> list[Provisioner]:
    """Contribute provisioners, chosen by their ``name`` in ``provisioner:`` settings.

    Called once, at configure time.

    :return: a list of objects satisfying
        :class:`~pytest_infranode.provisioners.base.Provisioner`; a name already taken by
        another plugin is an error that names both. None adds nothing.

    May be implemented in plugins and in the rootdir's ``conftest.py``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def pytest_infranode_container_options(node: Node, options: dict[str, Any]) -> dict[str, Any] | None:
    """Adjust the container of a node before it is created.

    :param node: the node about to be created (its name, platform and labels are set).
    :param options: the keyword arguments for docker-py's ``containers.create``, as the plugin
        built them; a copy you may change.
    :return: the options to use, or None to keep the plugin's.

    Stops at the first non-None result (firstresult). Removing the ``infranode.*`` labels
    breaks cleanup: keep them.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def pytest_infranode_converge(
    node: Node, provisioner: Provisioner, config: ProvisionerConfig, output: OutputSink
) -> ConvergeResult | None:
    """Converge a node: make it the machine under test.

    Called once per node, after it has booted and before its first test.

    :param node: the booted node.
    :param provisioner: the provisioner chosen in the settings.
    :param config: the provisioner's settings.
    :param output: call it with bytes of output; they go to the node's converge log, whole,
        as they come. Keep no more of it than you need: the result's ``output`` is only its end
        (at most 64 KiB are kept; :class:`~pytest_infranode.provisioners.base.OutputTail` collects it
        so).
    :return: a :class:`~pytest_infranode.provisioners.base.ConvergeResult`, or None to let the next
        implementation converge. The built-in implementation runs ``provisioner.converge`` and
        is ``trylast``, so a ``conftest.py`` that returns a result takes over.

    Stops at the first non-None result (firstresult).

    .. versionadded:: 0.1
    """


@hookspec
def pytest_infranode_after_converge(node: Node, result: ConvergeResult) -> None:
    """Called after a node converged successfully, before its first test.

    :param node: the converged node; run commands in it with ``node.run``.
    :param result: what the converge reported.

    .. versionadded:: 0.1
    """


@hookspec
def pytest_infranode_before_remove(node: Node) -> None:
    """Called before a node is removed (not when it is kept for a look).

    :param node: the node; still running unless it died. Collect logs or artefacts here.

    .. versionadded:: 0.1
    """
