"""Private work folders for extracted bundles (which hold ``.env``).

Each folder lives under ``<tmp>/deployer-work/`` and is named after the process that owns it
(pid and start time). It is removed when its ``with`` block ends; a process killed before that
cannot remove it, so ``sweep`` (run at the start of every pipeline step and every intake) removes
the folders of processes that are gone. An extracted ``.env`` never outlives its owner's next
successor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


def work_root() -> Path:
    return Path(tempfile.gettempdir()) / "deployer-work"


def _owner_alive(folder: Path) -> bool:
    pid, _, rest = folder.name.partition("-")
    try:
        process = psutil.Process(int(pid))
        return bool(abs(process.create_time() - float(rest.split("-", 1)[0])) < 0.01)
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
        logger.info("workdir.swept folders=%d", removed)
    return removed


def new_folder() -> Path:
    """A fresh private folder owned by this process (the caller removes it, or ``sweep`` does
    once this process is gone)."""
    created = psutil.Process(os.getpid()).create_time()
    folder = work_root() / f"{os.getpid()}-{created:.3f}-{uuid.uuid4().hex[:8]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700)
    return folder


@contextlib.contextmanager
def work_folder() -> Iterator[Path]:
    folder = new_folder()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
