"""``CodeStore`` of the local backend: one folder per code digest in the local image store.

    <home>/code/<module>/<code 12>/     the module's files without .env, and _deployer_check.py

A flow run's pull step is ``set_working_directory`` into that folder: what an ACI agent does by
downloading the same files from blob storage, a local agent does by reading them where they are.
A folder is written under a temporary name and renamed when complete, so it is never half-used.
Runs in flight keep the folder they started in; a new revision's runs use its own.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from deployer.bundle.digest import short
from deployer.bundle.envfile import ENV_FILE
from deployer.bundle.tree import copy_files
from deployer.preflight import CHECK_FILE


class LocalCodeStore:
    def __init__(self, home: Path) -> None:
        self._root = home / "code"

    def _dir(self, module: str, code_digest: str) -> Path:
        return self._root / module / short(code_digest)

    def requirement(self, requirements: bytes) -> str | None:
        return None  # set_working_directory is Prefect's own: every image can

    def publish(self, module: str, code_digest: str, source: Path, check_flow: str) -> None:
        target = self._dir(module, code_digest)
        if target.is_dir():
            return
        partial = target.with_name(f"{target.name}.partial-{uuid.uuid4().hex[:6]}")
        copy_files(source, partial, leave_out=frozenset({ENV_FILE}))
        partial.mkdir(parents=True, exist_ok=True)
        (partial / CHECK_FILE).write_text(check_flow)
        try:
            partial.rename(target)
        except OSError:  # published meanwhile by another step
            shutil.rmtree(partial, ignore_errors=True)

    def exists(self, module: str, code_digest: str) -> bool:
        return self._dir(module, code_digest).is_dir()

    def pull_steps(self, module: str, code_digest: str) -> list[dict[str, Any]]:
        return [{"prefect.deployments.steps.set_working_directory":
                 {"directory": str(self._dir(module, code_digest))}}]

    def codes(self, module: str) -> list[str]:
        folder = self._root / module
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and "." not in p.name) \
            if folder.is_dir() else []

    def delete(self, module: str, code_digest: str) -> None:
        shutil.rmtree(self._dir(module, code_digest), ignore_errors=True)
