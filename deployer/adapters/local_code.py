"""``CodeStore`` of the local backend: one folder per code digest in the local image store.

    <home>/code/<module>/<code 12>/     the module's files without .env, _deployer_check.py and
                                         .deployer-manifest (what the code digest is the hash of)

A flow run's pull steps first verify that folder against the digest its deployment names
(``bundle.manifest``), then ``set_working_directory`` into it: what an ACI agent does by
downloading the same files from blob storage, a local agent does by reading them where they are.
A folder is written under a temporary name and renamed when complete, so it is never half-used;
one that no longer verifies (altered, or partly deleted) is replaced, never reused. Runs in flight
keep the folder they started in; a new revision's runs use its own.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from deployer.bundle import BundleLimits
from deployer.bundle.digest import short
from deployer.bundle.envfile import is_env_file
from deployer.bundle.manifest import MANIFEST, verify, verify_command
from deployer.bundle.pack import code_manifest_of
from deployer.bundle.tree import copy_files, scan
from deployer.errors import BundleInvalid, Problem
from deployer.preflight import CHECK_FILE, CHECK_FLOW, CHECK_SHA256


class LocalCodeStore:
    def __init__(self, home: Path) -> None:
        self._root = home / "code"

    def _dir(self, module: str, code_digest: str) -> Path:
        return self._root / module / short(code_digest)

    def requirement(self, requirements: bytes) -> str | None:
        return None  # set_working_directory is Prefect's own: every image can

    def publish(self, module: str, code_digest: str, source: Path) -> bool:
        target = self._dir(module, code_digest)
        if not self.verify(module, code_digest):
            return False
        manifest = code_manifest_of(scan(source, UNBOUNDED))
        if manifest.value() != code_digest:
            raise BundleInvalid([Problem(str(source), None, "is not the code it is published as")],
                                source=f"module {module}")
        partial = target.with_name(f"{target.name}.partial-{uuid.uuid4().hex[:6]}")
        copy_files(source, partial, leave_out=is_env_file)
        partial.mkdir(parents=True, exist_ok=True)
        (partial / CHECK_FILE).write_text(CHECK_FLOW)
        (partial / MANIFEST).write_bytes(manifest.manifest())
        if target.exists():  # altered or incomplete: set aside, never reused
            stale = target.with_name(f"{target.name}.stale-{uuid.uuid4().hex[:6]}")
            target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            partial.rename(target)
        except OSError:  # published meanwhile by another step
            shutil.rmtree(partial, ignore_errors=True)
        return True

    def verify(self, module: str, code_digest: str) -> list[str]:
        return verify(str(self._dir(module, code_digest)), code_digest, {CHECK_FILE: CHECK_SHA256})

    def exists(self, module: str, code_digest: str) -> bool:
        return (self._dir(module, code_digest) / MANIFEST).is_file()

    def pull_steps(self, module: str, code_digest: str, revision_id: str) -> list[dict[str, Any]]:
        folder = str(self._dir(module, code_digest))
        return [
            {"prefect.deployments.steps.run_shell_script": {
                "script": verify_command(folder, code_digest, f"module {module} revision {revision_id}",
                                         {CHECK_FILE: CHECK_SHA256}), "stream_output": True}},
            {"prefect.deployments.steps.set_working_directory": {"directory": folder}},
        ]

    def _checks(self, agent: str) -> Path:
        return self._root / CHECKS / agent

    def check_channel(self, agent: str) -> dict[str, Any]:
        # a local agent sees the folder at once: look five times a second
        return {"kind": "folder", "path": str(self._checks(agent)), "poll": 0.2}

    def ask_check(self, agent: str, request_id: str, pull_steps: list[dict[str, Any]],
                  entrypoints: list[tuple[str, str]]) -> None:
        folder = self._checks(agent)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{request_id}.partial"  # the checker reads only whole requests
        partial.write_text(json.dumps({"pull": pull_steps, "entrypoints": [list(e) for e in entrypoints]}))
        partial.rename(folder / f"{request_id}.json")

    def end_check(self, agent: str, request_id: str) -> None:
        (self._checks(agent) / f"{request_id}.json").unlink(missing_ok=True)

    def codes(self, module: str) -> list[str]:
        folder = self._root / module
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and "." not in p.name) \
            if folder.is_dir() else []

    def delete(self, module: str, code_digest: str) -> None:
        shutil.rmtree(self._dir(module, code_digest), ignore_errors=True)


#: check requests for agents' warm checkers, next to the modules' codes (never a module name:
#: those start with a letter)
CHECKS = "_checks"
#: the folder was validated as a bundle already: no limits when it is read again to publish it
UNBOUNDED = BundleLimits(max_bytes=1 << 40, max_entries=1 << 20)
