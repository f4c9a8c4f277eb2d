"""``CodeStore`` of the azure backend: revisions' code in a container of the deployer's storage.

    <DEPLOYER_CODE_CONTAINER>/<module>/<code 12>/<path>    the module's files without .env
                              <module>/<code 12>/_deployer_check.py
                              <module>/<code 12>/.deployer-manifest  what the digest hashes
                              <module>/<code 12>/.complete  written last: the code is whole

A flow run fetches it before it loads its flow, with prefect-azure's own pull step and the
agent's managed identity (``DefaultAzureCredential``): the pull steps name the account's URL and
nothing else, so no key, SAS token or secret ever lands in a Prefect deployment, run or log.
Each run downloads into a fresh temporary folder, so runs in flight keep the code they started
with; folders older than a week (``SWEEP_DAYS``, far beyond the drain timeout) are swept by the
next run's pull. The download is then verified against the digest the deployment names
(``bundle.manifest``) before the flow is loaded: a copy someone altered, partly deleted or added
to is refused by every run, naming the file. Publishing trusts nothing already there unless it
verifies, and replaces it otherwise. The agents' identity needs *Storage Blob Data Reader* on
this container only; only the app (Blob Data Owner) writes to it.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from deployer.adapters.storage_errors import storage_errors
from deployer.bundle import BundleLimits
from deployer.bundle.digest import short
from deployer.bundle.envfile import is_env_file
from deployer.bundle.manifest import MANIFEST, verify, verify_command
from deployer.bundle.pack import code_manifest_of
from deployer.bundle.parts import BLOB_PULL_REQUIREMENT, pulls_from_blob
from deployer.bundle.tree import scan
from deployer.errors import BundleInvalid, Problem
from deployer.preflight import CHECK_FILE, CHECK_FLOW, CHECK_SHA256

COMPLETE = ".complete"
#: check requests for agents' warm checkers (never a module name: those start with a letter)
CHECKS = "_checks"
SWEEP_DAYS = 7
#: a fresh folder per run (printed for the next step), after sweeping those of week-old runs;
#: Prefect runs it without a shell (shlex-split), hence the explicit ``sh -c``
WORKDIR_SCRIPT = ("sh -c 'find \"${TMPDIR:-/tmp}\" -maxdepth 1 -name \"deployer-code.*\" "
                  f"-mtime +{SWEEP_DAYS} -exec rm -rf {{}} + 2>/dev/null; "
                  "mktemp -d -t deployer-code.XXXXXXXX'")


class BlobCodeStore:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container = service.get_container_client(container)
        self._name = container
        self._where = service.url
        # the account's endpoint, without any credential a connection string may have carried
        self._account_url = service.url.split("?", 1)[0]
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            with storage_errors(f"create code container {self._name}", self._where):
                try:
                    self._container.create_container()
                except ResourceExistsError:
                    pass
            self._ready = True

    def requirement(self, requirements: bytes) -> str | None:
        if pulls_from_blob(requirements):
            return None
        return (f"code-only changes deploy the slow way (an image build and an agent rotation): "
                f"add {BLOB_PULL_REQUIREMENT} to requirements.txt so that flow runs can fetch "
                "their code from the deployer's storage")

    def _prefix(self, module: str, code_digest: str) -> str:
        return f"{module}/{short(code_digest)}/"

    def publish(self, module: str, code_digest: str, source: Path) -> bool:
        if not self.verify(module, code_digest):
            return False
        self._ensure()
        prefix = self._prefix(module, code_digest)
        tree = scan(source, BundleLimits(max_bytes=1 << 40, max_entries=1 << 20))
        manifest = code_manifest_of(tree)
        if manifest.value() != code_digest:
            raise BundleInvalid([Problem(str(source), None, "is not the code it is published as")],
                                source=f"module {module}")
        with storage_errors(f"publish the code of {module} ({short(code_digest)})", self._where):
            stale = set(self._names(prefix))
            self._delete(prefix + COMPLETE)  # a copy being replaced is never taken for whole
            for entry in tree.files:
                if is_env_file(entry.path):
                    continue
                with open(source / entry.path, "rb") as data:
                    self._container.upload_blob(prefix + entry.path, data, overwrite=True)
                stale.discard(prefix + entry.path)
            self._container.upload_blob(prefix + CHECK_FILE, CHECK_FLOW.encode(), overwrite=True)
            self._container.upload_blob(prefix + MANIFEST, manifest.manifest(), overwrite=True)
            for name in stale - {prefix + CHECK_FILE, prefix + MANIFEST, prefix + COMPLETE}:
                self._delete(name)  # what someone added to an earlier copy
            self._container.upload_blob(prefix + COMPLETE, io.BytesIO(b""), overwrite=True)
        return True

    def verify(self, module: str, code_digest: str) -> list[str]:
        """The stored copy, downloaded and checked as a flow run checks it."""
        prefix = self._prefix(module, code_digest)
        folder = Path(tempfile.mkdtemp(prefix="deployer-verify-"))
        try:
            with storage_errors(f"read the code of {module} ({short(code_digest)})", self._where):
                names = self._names(prefix)
                if prefix + COMPLETE not in names:
                    return ["the code is missing from the code store" if not names else
                            f"{COMPLETE}: missing: the code is incomplete"]
                for name in names:
                    target = folder / name[len(prefix):]
                    if not target.resolve().is_relative_to(folder.resolve()):
                        return [f"{name[len(prefix):]}: a name that leaves its folder"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(self._container.download_blob(name).readall())
            return verify(str(folder), code_digest, {CHECK_FILE: CHECK_SHA256})
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def exists(self, module: str, code_digest: str) -> bool:
        blob = self._container.get_blob_client(self._prefix(module, code_digest) + COMPLETE)
        with storage_errors(f"look up the code of {module}", self._where):
            try:
                blob.get_blob_properties()
            except ResourceNotFoundError:
                return False
        return True

    def check_channel(self, agent: str) -> dict[str, Any]:
        # the agents' identity reads this container; a look every second (one listing call)
        return {"kind": "blob", "account_url": self._account_url, "container": self._name,
                "prefix": f"{CHECKS}/{agent}/", "poll": 1.0}

    def ask_check(self, agent: str, request_id: str, pull_steps: list[dict[str, Any]],
                  entrypoints: list[tuple[str, str]]) -> None:
        self._ensure()
        body = json.dumps({"pull": pull_steps, "entrypoints": [list(e) for e in entrypoints]})
        with storage_errors(f"ask agent {agent} to check code", self._where):
            self._container.upload_blob(f"{CHECKS}/{agent}/{request_id}.json", body.encode(),
                                        overwrite=True)

    def end_check(self, agent: str, request_id: str) -> None:
        with storage_errors(f"end the check on agent {agent}", self._where):
            self._delete(f"{CHECKS}/{agent}/{request_id}.json")

    def _names(self, prefix: str) -> list[str]:
        try:
            return [b.name for b in self._container.list_blobs(name_starts_with=prefix)]
        except ResourceNotFoundError:
            return []

    def _delete(self, name: str) -> None:
        try:
            self._container.delete_blob(name)
        except ResourceNotFoundError:
            pass

    def pull_steps(self, module: str, code_digest: str, revision_id: str) -> list[dict[str, Any]]:
        check = verify_command(".", code_digest, f"module {module} revision {revision_id}",
                               {CHECK_FILE: CHECK_SHA256})
        return [
            {"prefect.deployments.steps.run_shell_script": {
                "id": "deployer-workdir", "script": WORKDIR_SCRIPT, "stream_output": False}},
            {"prefect.deployments.steps.set_working_directory": {
                "directory": "{{ deployer-workdir.stdout }}"}},
            {"prefect_azure.deployments.steps.pull_from_azure_blob_storage": {
                "container": self._name, "folder": self._prefix(module, code_digest).rstrip("/"),
                "credentials": {"account_url": self._account_url}}},
            {"prefect.deployments.steps.run_shell_script": {"script": check, "stream_output": True}},
        ]

    def codes(self, module: str) -> list[str]:
        with storage_errors(f"list the code of {module}", self._where):
            try:
                found = {b.name.split("/")[1] for b in self._container.list_blobs(
                    name_starts_with=f"{module}/") if b.name.endswith("/" + COMPLETE)}
            except ResourceNotFoundError:
                return []
        return sorted(found)

    def delete(self, module: str, code_digest: str) -> None:
        prefix = self._prefix(module, code_digest)
        with storage_errors(f"delete the code of {module} ({short(code_digest)})", self._where):
            # the marker first: a half-deleted code is never taken for a whole one
            for name in sorted(self._names(prefix), key=lambda n: not n.endswith(COMPLETE)):
                self._delete(name)
