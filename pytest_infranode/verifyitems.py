"""The provisioner's ``verify`` action as pytest tests (Molecule's ``verify.yml``, checks
written for the tool rather than as testinfra specs): the file the configuration names is
collected, when pytest reaches it, as one test per platform, ``verify.yml::verify[debian-12]``,
which makes and converges every node of the platform, runs the action over all of them and
fails with the tool's own words.

Part of the pytest glue: the session does the work (:meth:`InfraSession.verify`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

from pytest_infranode.errors import InfranodeError
from pytest_infranode.provisioners.base import action_of
from pytest_infranode.provisioners.base import resolve

if TYPE_CHECKING:
    from pytest_infranode.platforms import Platform
    from pytest_infranode.session import InfraSession


class VerifyFailed(Exception):
    """The verify action ran and failed: a test failure, shown without a Python traceback."""


def verify_file(infra: InfraSession) -> Path | None:
    """The file of the session provisioner's ``verify`` action, when it names one."""
    config = infra.settings.provisioner
    what = action_of(infra.provisioner, "verify", config)
    return resolve(what, config.base_dir).resolve() if what else None


def collect(file_path: Path, parent: pytest.Collector, infra: InfraSession) -> VerifyFile | None:
    """``file_path`` as a file of verify tests, if it is the one the configuration names."""
    wanted = verify_file(infra)
    if wanted is None or file_path.resolve() != wanted:
        return None
    found: VerifyFile = VerifyFile.from_parent(parent, path=file_path, infra=infra)
    return found


class VerifyFile(pytest.File):
    """The verify action's file: a test per platform of the session (one for a span)."""

    def __init__(self, *, infra: InfraSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.infra = infra

    def collect(self) -> list[pytest.Item]:
        # the platforms of a span have one inventory: the action runs once over it, as Molecule's
        return [
            VerifyItem.from_parent(self, name=f"verify[{p.name}]", infra=self.infra, platform=p)
            for p in self.infra.platforms
            if self.infra.layout.home(p.name) == p.name
        ]


class VerifyItem(pytest.Item):
    """The verify action over every node of one platform."""

    def __init__(self, *, infra: InfraSession, platform: Platform, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.infra = infra
        self.verify_platform = platform
        """Read by the glue's collection hook: the nodes this test needs."""

    def runtest(self) -> None:
        try:
            what, result, log = self.infra.verify(self.verify_platform)
        except InfranodeError as err:
            raise VerifyFailed(str(err)) from None
        if not result.ok:
            reason = f": {result.reason}" if result.reason else ""
            raise VerifyFailed(
                f"{what} failed on platform {self.verify_platform.name}: the "
                f"{self.infra.provisioner.name} provisioner exited with status "
                f"{result.exit_status}{reason}\nfull log: {log}\n"
                f"--- last lines of its output ---\n{result.output}"
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, VerifyFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name
