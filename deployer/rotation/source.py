"""A request's bundle, read from storage when an operation first needs it in an invocation,
into a private work folder (``deployer.workdir``) removed when the invocation ends."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

from deployer.bundle import Module
from deployer.models import Request
from deployer.pipeline.revision_bundle import load_revision_bundle
from deployer.ports import Services
from deployer.workdir import new_folder


class RevisionSource:
    def __init__(self, services: Services, request: Request) -> None:
        self._services = services
        self._request = request
        self._folder: Path | None = None
        self._module: Module | None = None

    def __enter__(self) -> RevisionSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
            self._module = None

    def retarget(self, request: Request) -> None:
        """Read ``request``'s bundle from now on (a redeploy's configuration was refreshed)."""
        assert self._module is None, "retarget before the bundle is read"
        self._request = request

    @property
    def module(self) -> Module:
        if self._module is None:
            self._folder = new_folder()
            self._module = load_revision_bundle(self._services, self._request, self._folder)
        return self._module
