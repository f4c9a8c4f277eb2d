"""Rotated Key Vault secrets become configuration changes: for every module whose current
revision pins Key Vault references (``pipeline.secret_pins``), the latest version of each secret
is asked for; where one moved on, the module's bundle is accepted again with the new versions
pinned, which is a new config digest and so a rotation of the agent (no build). Run by the nightly
timer after the cleanup; ``dry_run`` only reports. A secret that cannot be read is reported and
the module left as it runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from deployer.bundle import load_archive, module_from_blob_name
from deployer.bundle.archive import ChunkReader
from deployer.bundle.keyvault_ref import PREFIX, parse_reference
from deployer.errors import DeployerError
from deployer.models import Intent, ModuleState, Request, RequestKind, Revision, Trigger
from deployer.request_queue import new_record, submit
from deployer.revisions import secret_pins
from deployer.services import Services
from deployer.workdir import work_folder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rotated:
    module: str
    revision: str
    keys: tuple[str, ...] = ()
    request_id: str = ""  # the redeploy queued (empty in a dry run)
    error: str = ""


def redeploy_rotated(services: Services, *, dry_run: bool = False) -> list[Rotated]:
    found = []
    for state in services.state.modules():
        revision = state.current
        if revision is None or not revision.secrets:
            continue
        try:
            keys = _rotated_keys(services, revision)
            if not keys:
                continue
            request_id = "" if dry_run else _queue(services, state, keys)
            found.append(Rotated(state.module, revision.id, keys, request_id))
            logger.info("secrets.rotated module=%s keys=%s request=%s", state.module, ",".join(keys),
                        request_id or "-")
        except DeployerError as exc:  # never a value: the messages name keys, secrets and vaults
            found.append(Rotated(state.module, revision.id, error=exc.message))
            logger.warning("secrets.check_failed module=%s error=%s", state.module, exc.message)
    return found


def _rotated_keys(services: Services, revision: Revision) -> tuple[str, ...]:
    keys = []
    for key, uri in revision.secrets:
        ref = parse_reference(f"{PREFIX}SecretUri={uri})")
        if services.secrets.latest_version(ref) != ref.version:
            keys.append(key)
    return tuple(keys)


def _queue(services: Services, state: ModuleState, keys: tuple[str, ...]) -> str:
    current = state.current
    assert current is not None
    info, chunks = services.bundles.open(current.bundle)
    with work_folder() as work:
        module = load_archive(ChunkReader(chunks), work, services.limits, label=current.bundle,
                              expected_name=module_from_blob_name(current.bundle),
                              checker=services.checker).for_environment(services.settings.environment)
        module, pins = secret_pins.pin(module, services.secrets, source=current.bundle)
        revision = Revision.of(module, services.settings.config_digest_key.reveal(),
                               bundle=current.bundle, secrets=pins)
    request_id = Request.make_id("secret-rotation", current.bundle, info.etag, *(uri for _, uri in pins))
    if services.state.run(module.name, request_id) is None:
        trigger = Trigger("timer", f"secret-rotation:{','.join(keys)}",
                          {"blob": current.bundle, "etag": info.etag, "rotated": ",".join(keys)})
        submit(services, new_record(Request(request_id, RequestKind.DEPLOY, module.name, trigger,
                                            revision, services.now(), Intent(services.now()))))
    return request_id
