"""Reading a request's revision from its bundle: the code, .env and prefect.yaml it deploys.

The bundle is streamed into a fresh folder and validated again (it is input from storage, like
any upload). It must still be the bundle the request was made from: for a bundle deploy the blob's
etag and code digest must match, and for every request the configuration digest must.
"""

from __future__ import annotations

from pathlib import Path

from deployer.bundle import Module, load_archive, module_from_blob_name
from deployer.bundle.archive import ChunkReader
from deployer.errors import BundleInvalid, Problem
from deployer.models import Request, RequestKind
from deployer.pipeline import secret_pins
from deployer.ports import Services


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
    module = secret_pins.apply(module, revision.secrets)  # the versions it was accepted with
    problems = []
    if request.kind is RequestKind.DEPLOY and module.code_digest() != revision.code_digest:
        problems.append(Problem(revision.bundle, None, "no longer has the code digest it was "
                                "accepted with"))
    if module.config_digest(services.settings.config_digest_key.reveal()) != revision.config_digest:
        problems.append(Problem(revision.bundle, None, "no longer has the configuration digest it "
                                "was accepted with"))
    if problems:
        raise BundleInvalid(problems, source=revision.bundle)
    return module
