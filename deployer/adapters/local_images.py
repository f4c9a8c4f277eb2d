"""Local image builder: a revision image is a folder with the module's code and a uv virtualenv.

    <home>/images/<module>/<code 12>/
        code/        the module's files, without .env
        venv         link to the venv store's venv for its dependency digest (``local_build``)
        build.json   the build: its id, the builder process, running | failed (with the log tail)
        build.log    what uv said
        image.json   written last: an image without it is an interrupted build, rebuilt

An image is built once per code digest and reused by every later agent of that code; its venv is
built once per dependency digest. Like an ACR Tasks run, a build goes on without the process that
started it: ``start_build`` copies the code and starts ``python -m deployer.adapters.local_build``
in a session of its own, and ``build_status`` looks at its record (a builder process that is gone
without a result is a failed build). A host killed mid-build therefore never builds twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from deployer.adapters.local_build import (
    LOG_TAIL_LINES,
    dependency_digest,
    prune,
    read,
    uv_env,
    write,
)
from deployer.adapters.system_clock import SYSTEM_CLOCK
from deployer.bundle.digest import short
from deployer.bundle.envfile import is_env_file
from deployer.bundle.tree import copy_files
from deployer.ports.images import BuildProgress, BuildState, Image, ManifestInfo

logger = logging.getLogger(__name__)


class LocalImageBuilder:
    #: a venv with prefetched wheels takes ~5 s; a cold cache 30-60 s
    expected_build_seconds = 8.0

    def __init__(self, home: Path, python: str = sys.executable, venvs: Path | None = None) -> None:
        self._root = home / "images"
        self._python = python
        self._venvs = venvs or home / "venvs"

    def _dir(self, module: str, code_digest: str) -> Path:
        return self._root / module / short(code_digest)

    def find(self, module: str, code_digest: str) -> Image | None:
        folder = self._dir(module, code_digest)
        marker = folder / "image.json"
        if not marker.is_file():
            return None
        try:
            meta = json.loads(marker.read_text())
        except ValueError:
            return None
        if meta.get("code_digest") != code_digest:
            return None
        return self._image(folder)

    def resolve(self, module: str, reference: str) -> Image | None:
        """A recorded image path, or ``<repository>:<tag>`` whose tag is a local image's."""
        if reference.startswith("/"):
            folder = Path(reference)
        else:
            tag = reference.split("@", 1)[0].rpartition(":")[2]
            if not tag or "/" in tag:
                return None
            folder = self._root / module / tag
        if not (folder / "image.json").is_file() or folder.parent.name != module:
            return None
        return self._image(folder)

    def image_modules(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir())

    def manifests(self, module: str) -> list[ManifestInfo]:
        """Each local image is its own 'manifest', tagged with its code digest."""
        out = []
        folder = self._root / module
        for image in sorted(folder.iterdir()) if folder.is_dir() else []:
            marker = image / "image.json"
            try:
                built = datetime.fromisoformat(json.loads(marker.read_text())["built_at"])
            except (OSError, ValueError, KeyError):
                built = datetime.fromtimestamp(image.stat().st_mtime, UTC)  # an interrupted build
            out.append(ManifestInfo(module, f"local:{image.name}", (image.name,), built))
        return out

    def delete_tag(self, module: str, tag: str) -> None:
        shutil.rmtree(self._root / module / tag, ignore_errors=True)
        in_use = {p.resolve() for p in self._root.glob("*/*/venv")} if self._root.is_dir() else set()
        prune(self._venvs, in_use)

    def delete_manifest(self, module: str, digest: str) -> None:
        self.delete_tag(module, digest.removeprefix("local:"))

    def _image(self, folder: Path) -> Image:
        return Image(ref=str(folder), working_dir=str(folder / "code"))

    def start_build(self, module: str, code_digest: str, source: Path) -> str:
        folder = self._dir(module, code_digest)
        record = read(folder / "build.json")
        if record.get("state") == "running" and _alive(record):
            return str(record["build_id"])  # already building: join it
        if folder.exists():  # an interrupted or failed build: start again from scratch
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        copy_files(source, folder / "code", leave_out=is_env_file)
        build_id = f"local-{short(code_digest)}-{uuid.uuid4().hex[:6]}"
        requirements = (folder / "code" / "requirements.txt").read_bytes()
        record = {"build_id": build_id, "module": module, "code_digest": code_digest,
                  "state": "running", "python": self._python, "started_at": SYSTEM_CLOCK.now().isoformat(),
                  "venvs": str(self._venvs),
                  "dependencies": dependency_digest(requirements, self._python, code_digest)}
        write(folder / "build.json", record)
        with open(folder / "build.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "deployer.adapters.local_build", str(folder)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=uv_env(), start_new_session=True)
        try:
            created = psutil.Process(process.pid).create_time()
        except psutil.NoSuchProcess:
            created = 0.0
        write(folder / "build.json", {**record, "pid": process.pid, "create_time": created})
        logger.info("image.build_started module=%s code=%s build=%s", module,
                    short(code_digest), build_id)
        return build_id

    def build_status(self, module: str, code_digest: str, build_id: str) -> BuildProgress:
        folder = self._dir(module, code_digest)
        found = self.find(module, code_digest)
        if found is not None:
            return BuildProgress(BuildState.SUCCEEDED, found)
        record = read(folder / "build.json")
        tail = _tail(folder / "build.log")
        if "pid" in record:
            _reap(int(record["pid"]))
        if record.get("state") == "failed":
            return BuildProgress(BuildState.FAILED, detail=str(record.get("error", "")),
                                 log_tail=str(record.get("log_tail") or tail), hint=(
                                     "fix requirements.txt (the log tail shows what uv said) and "
                                     "upload again; the running agent is untouched"))
        if not record:
            return BuildProgress(BuildState.FAILED, detail=f"build {build_id} left no record")
        if record.get("state") == "running" and "pid" in record and not _alive(record):
            return BuildProgress(BuildState.FAILED, detail="the builder process ended without a "
                                 "result", log_tail=tail)
        return BuildProgress(BuildState.RUNNING, detail="installing requirements.txt")




def _alive(record: dict[str, Any]) -> bool:
    try:
        process = psutil.Process(int(record["pid"]))
        return bool(abs(process.create_time() - float(record["create_time"])) < 0.01 and
                    process.status() != psutil.STATUS_ZOMBIE)
    except (KeyError, ValueError, TypeError, psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _reap(pid: int) -> None:
    """Collect the builder if it is an exited child of this process (no zombie is left)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""
