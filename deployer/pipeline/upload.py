"""Upload: a validated module, packed deterministically, to the bundles container.

The blob name is ``<module>/<UTC timestamp>-<code 12>.tar.gz``: uploads never overwrite each
other, and the module is the first path segment, as the blob trigger expects. The request id the
trigger will give the upload is known here already (blob name + etag), so callers can follow it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployer.bundle import load_folder, pack, short
from deployer.models import Intent, Request, Revision
from deployer.pipeline.intake import ENVIRONMENT, UPLOADED_AT, USER, upload_intent
from deployer.services import Services

#: bundles up to this size are packed in memory, bigger ones spill to a temporary file
SPOOL_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Uploaded:
    module: str
    blob: str
    etag: str
    code_digest: str
    config_digest: str
    request_id: str
    intent: Intent
    deps_digest: str = ""

    @property
    def revision(self) -> Revision:
        return Revision(module=self.module, code_digest=self.code_digest,
                        config_digest=self.config_digest, bundle=self.blob,
                        deps_digest=self.deps_digest)


#: blob metadata of a `deployer deploy`: an explicit wish, which may bring back a revision that
#: was rolled back on its own (a plain upload may not)
EXPLICIT = "explicit"


def upload_module(services: Services, path: Path, *, explicit: bool = False,
                  user: str = "") -> Uploaded:
    """``user``: who uploads it, in its metadata (the request's requester, whichever of the CLI
    and the blob trigger makes the request first: an approval by someone else may be required)."""
    module = load_folder(path, services.limits, checker=services.checker)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        packed = pack(module.tree, spool, prefix=module.name)
        spool.seek(0)
        uploaded = services.now()
        stamp = uploaded.strftime("%Y%m%dT%H%M%S%fZ")
        blob = f"{module.name}/{stamp}-{short(packed.code_digest)}.tar.gz"
        config = module.config_digest(services.settings.config_digest_key.reveal())
        info = services.bundles.upload(blob, spool, {
            "module": module.name, "code_digest": packed.code_digest, "config_digest": config,
            "uploaded_by": "deployer-cli", UPLOADED_AT: uploaded.isoformat(),
            **({EXPLICIT: "true"} if explicit else {}), **({USER: user} if user else {}),
            # the environment it deploys into (the blob trigger reads it; none: the first)
            **({ENVIRONMENT: services.settings.environment} if services.settings.environment else {})})
    return Uploaded(module=module.name, blob=blob, etag=info.etag, code_digest=packed.code_digest,
                    config_digest=config, request_id=Request.make_id("blob", blob, info.etag),
                    intent=upload_intent(info), deps_digest=module.dependencies().digest)
