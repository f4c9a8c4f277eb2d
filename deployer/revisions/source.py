"""A request's bundle, read from storage when an operation first needs it in an invocation,
into a private work folder (``deployer.workdir``) removed when the invocation ends.

The bundle is streamed into a fresh folder and validated again (it is input from storage, like
any upload). It must still be the bundle the request was made from: for a bundle deploy the blob's
etag and code digest must match, and for every request the configuration digest must."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

from deployer.bundle import Module, load_archive, module_from_blob_name
from deployer.bundle.archive import ChunkReader
from deployer.errors import BundleInvalid, Problem
from deployer.models import Request, RequestKind
from deployer.revisions import secret_pins
from deployer.services import Services
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


def load_revision_bundle(services: Services, request: Request, work: Path) -> Module:
    revision = request.revision
    info, chunks = services.bundles.open(revision.bundle)
    expected = request.trigger.detail.get("etag") if request.kind is RequestKind.DEPLOY else None
    if expected and info.etag != expected:
        raise BundleInvalid([Problem(revision.bundle, None, "was overwritten after it was accepted; "
                                     "the newer upload is deployed by its own request")],
                            source=revision.bundle)
    module = load_archive(ChunkReader(chunks), work, services.limits, label=revision.bundle,
                          expected_name=module_from_blob_name(revision.bundle))
    # as its environment deploys it (``.env.<env>``), with the secret versions it was accepted with
    module = secret_pins.apply(module.for_environment(services.settings.environment),
                               revision.secrets)
    problems = []
    if request.kind is RequestKind.DEPLOY and module.code_digest() != revision.code_digest:
        problems.append(Problem(revision.bundle, None, "no longer has the code digest it was "
                                "accepted with"))
    if not module.has_config_digest(services.settings.config_digest_key.reveal(), revision.config_digest):
        problems.append(Problem(revision.bundle, None, "no longer has the configuration digest it "
                                "was accepted with"))
    if problems:
        raise BundleInvalid(problems, source=revision.bundle)
    return module
