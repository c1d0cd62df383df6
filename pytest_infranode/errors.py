"""Exceptions raised by pytest-infranode.

Every error says *what* went wrong, *where* (a file:line, a platform, a node, the daemon) and
*how to fix it*; ``str(err)`` renders all three. Constructors have no side effects.

The tree::

    InfranodeError
    ├── SettingsError            bad option, ini key or infranode.yaml (raised before any node)
    │   └── UnknownPlatform      a platform name not in the catalog (carries suggestions)
    ├── DaemonError              the Docker daemon cannot be used
    │   ├── DaemonUnreachable    nothing answers at the endpoint
    │   ├── DaemonPermissionDenied
    │   └── DaemonTLSError
    ├── ImageError               an image cannot be found, pulled or built
    ├── NodeError                a node cannot be created, started or booted
    ├── ConvergeError            the provisioner failed (carries exit status and log tail)
    ├── Interrupted              Ctrl-C or SIGTERM stopped the work under way (never a test's verdict)
    ├── ChannelError             a command could not be run in a node
    │   └── ChannelUnavailable   the node's exec channel cannot start (one exec per command instead)
    └── PluginError              a plugin broke a hook's rules

The pytest glue turns ``SettingsError`` and ``DaemonError`` into ``pytest.UsageError`` and the
others into a failed fixture without a Python traceback.
"""

from __future__ import annotations

__all__ = [
    "ChannelError",
    "ChannelUnavailable",
    "ConvergeError",
    "DaemonError",
    "DaemonPermissionDenied",
    "DaemonTLSError",
    "DaemonUnreachable",
    "ImageError",
    "InfranodeError",
    "InfranodeWarning",
    "Interrupted",
    "KernelWithoutIPv6",
    "NodeError",
    "PluginError",
    "SettingsError",
    "UnknownPlatform",
]


class InfranodeWarning(UserWarning):
    """A degradation the user should know about (a fallback was taken)."""


class InfranodeError(Exception):
    """Base of every error raised by pytest-infranode.

    :param what: one sentence saying what went wrong.
    :param where: the place: a file:line, a platform, a node, a daemon endpoint.
    :param fix: what the user can do about it.
    :param detail: extra evidence (a log tail), rendered last.
    """

    def __init__(self, what: str, *, where: str = "", fix: str = "", detail: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.fix = fix
        self.detail = detail

    def __str__(self) -> str:
        lines = [self.what]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        if self.detail:
            lines.append(self.detail.rstrip("\n"))
        return "\n".join(lines)


class SettingsError(InfranodeError):
    """An option, ini key or infranode.yaml entry is invalid.

    Raised while settings are read, before any container exists; pytest shows it as a usage error.
    """


class UnknownPlatform(SettingsError):
    """A platform name is not in the catalog.

    :param name: the name the user gave.
    :param known: every known name.
    :param suggestions: the closest known names, best first.
    """

    def __init__(self, name: str, *, known: list[str], suggestions: list[str], where: str) -> None:
        hint = f"did you mean {suggestions[0]!r}? " if suggestions else ""
        super().__init__(
            f"unknown platform {name!r}",
            where=where,
            fix=f"{hint}Known platforms: {', '.join(known)} (list them with `infranode platforms`)",
        )
        self.name = name
        self.known = known
        self.suggestions = suggestions


class DaemonError(InfranodeError):
    """The Docker daemon cannot be used. Raised by the engine; shown as a usage error."""


class DaemonUnreachable(DaemonError):
    """Nothing answers at the daemon endpoint (no socket, refused, unresolvable host)."""


class DaemonPermissionDenied(DaemonError):
    """The daemon's socket exists but this user may not open it."""


class DaemonTLSError(DaemonError):
    """TLS with the daemon failed (missing certificates, wrong CA, rejected client)."""


class ImageError(InfranodeError):
    """An image is not on the daemon and cannot be pulled or built. Fails the node's tests."""


class NodeError(InfranodeError):
    """A node's container cannot be created, started, or its init does not come up."""


class KernelWithoutIPv6(NodeError):
    """A node did not start because it asked for an IPv6 setting (``key``) and the daemon's
    kernel has no IPv6 at all (booted with ``ipv6.disable=1``). The engine has learnt it: nodes
    created after this leave the IPv6 defaults out; the node factory makes this one again."""

    def __init__(self, key: str, *, where: str = "") -> None:
        super().__init__(
            f"the daemon's kernel has no IPv6 (booted with ipv6.disable=1?): the node's setting {key} "
            "cannot be made",
            where=where,
            fix=f"take {key} out of the node's `sysctls:`, or use a daemon whose kernel has IPv6",
        )
        self.key = key


class ConvergeError(InfranodeError):
    """The provisioner failed on a node.

    :param exit_status: the provisioner's exit status (None when it did not run).
    :param log_tail: the last lines of its output.
    """

    def __init__(
        self,
        what: str,
        *,
        where: str = "",
        fix: str = "",
        exit_status: int | None = None,
        log_tail: str = "",
    ) -> None:
        detail = f"--- last lines of the converge output ---\n{log_tail}" if log_tail else ""
        super().__init__(what, where=where, fix=fix, detail=detail)
        self.exit_status = exit_status
        self.log_tail = log_tail


class Interrupted(InfranodeError):
    """The session was interrupted (Ctrl-C, SIGTERM): the work of a bring-up thread stops at
    its next step. Raised only in those threads; the session says where it was interrupted."""


class ChannelError(InfranodeError):
    """A command could not be run in a node (the node died, the daemon went away)."""


class ChannelUnavailable(ChannelError):
    """The node's exec channel cannot start (no ``sh``, no attachable exec).

    Raised by ``Channel.open``; the testinfra backend catches it, warns once and runs one
    ``exec`` per command instead.
    """


class PluginError(InfranodeError):
    """A plugin broke a hook's rules (a duplicate platform or provisioner name, a bad return)."""
