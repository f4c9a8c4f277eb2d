"""A request's bundle, read from storage when an operation first needs it in an invocation.

The bundle is extracted into a private folder under ``<tmp>/deployer-work/`` that is removed when
the invocation ends. A process killed mid-step cannot remove its folder (and with it the
extracted ``.env``), so every invocation first sweeps the folders of processes that are gone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

import psutil

from deployer.bundle import Module
from deployer.models import Request
from deployer.pipeline.revision_bundle import load_revision_bundle
from deployer.ports import Services

logger = logging.getLogger(__name__)


def work_root() -> Path:
    return Path(tempfile.gettempdir()) / "deployer-work"


def _owner_alive(folder: Path) -> bool:
    pid, _, created = folder.name.partition("-")
    try:
        process = psutil.Process(int(pid))
        return abs(process.create_time() - float(created.split("-", 1)[0])) < 0.01
    except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def sweep() -> int:
    """Remove the work folders of processes that no longer run; returns how many."""
    root = work_root()
    removed = 0
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.is_dir() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        logger.info("source.swept folders=%d", removed)
    return removed


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
            created = psutil.Process(os.getpid()).create_time()
            self._folder = work_root() / f"{os.getpid()}-{created:.3f}-{uuid.uuid4().hex[:8]}"
            self._folder.mkdir(parents=True, mode=0o700)
            self._module = load_revision_bundle(self._services, self._request, self._folder)
        return self._module
