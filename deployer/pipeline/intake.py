"""Intake: an uploaded bundle becomes a deploy request on the queue plus a run record.

The bundle is streamed from storage into a fresh temporary folder, validated and digested; it is
never held whole in memory. A rejected bundle gets a run record listing every problem and changes
nothing else. The request id comes from (blob name, etag), so a trigger that fires twice for the
same upload maps to the same request and enqueues it once.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from deployer import notices
from deployer.bundle import blob_name_problem, load_archive, module_from_blob_name
from deployer.bundle.archive import ChunkReader
from deployer.bundle.contract import MODULE_NAME
from deployer.bundle.entries import printable
from deployer.errors import BundleInvalid, NotFound, Problem, StateConflict
from deployer.models import (
    HistoryEntry,
    Intent,
    Request,
    RequestKind,
    RequestStage,
    Revision,
    RunRecord,
    RunStatus,
    Stage,
    StageStatus,
    Trigger,
)
from deployer.ports.storage import BundleInfo
from deployer.request_queue import new_record, submit
from deployer.revisions import secret_pins
from deployer.services import Services
from deployer.workdir import sweep, work_folder

logger = logging.getLogger(__name__)
#: run records of bundles whose name names no valid module are kept under this key
REJECTED_MODULE = "_rejected"


def accept_bundle(services: Services, blob_name: str, *, via: str = "blob",
                  detail: dict[str, str] | None = None) -> RunRecord:
    """The blob trigger's use case, and ``deployer deploy``'s (``via="cli"``, with who asked in
    ``detail``): both make the same request of the same upload (its id comes from blob name and
    etag), so a deploy the CLI drives and the trigger of its upload are one request."""
    hinted = module_from_blob_name(blob_name)
    record_module = hinted if MODULE_NAME.match(hinted) else REJECTED_MODULE
    info, chunks = services.bundles.open(blob_name)
    wanted = info.metadata.get(ENVIRONMENT, "")
    unknown = bool(wanted) and wanted not in services.settings.environments
    if wanted and not unknown:  # the request lives in the environment the upload names
        services = services.in_environment(wanted)
    request_id = Request.make_id("blob", blob_name, info.etag)
    trigger = Trigger(via, f"{blob_name}@{info.etag}" if via == "blob" else blob_name, {
        "blob": blob_name, "etag": info.etag, "container": services.settings.bundles_container,
        **({"explicit": "true"} if info.metadata.get("explicit") == "true" else {}),
        **({"user": info.metadata[USER]} if info.metadata.get(USER) else {}),
        **(detail or {})})
    existing = services.state.run(record_module, request_id)
    if existing is not None and existing.value.status is not RunStatus.QUEUED:
        logger.info("intake.duplicate blob=%r request=%s status=%s", blob_name, request_id,
                    existing.value.status)
        return existing.value
    started = services.now()
    limits = services.limits
    label = printable(blob_name)  # a name is input: never shown with its control characters
    try:
        misnamed = blob_name_problem(blob_name)
        if misnamed:
            raise BundleInvalid([Problem(label, None, misnamed)], source=label)
        if unknown:
            known = ", ".join(services.settings.environments) or "none (DEPLOYER_ENVIRONMENTS)"
            raise BundleInvalid([Problem(label, None, f"names environment {wanted!r} (blob metadata "
                                         f"{ENVIRONMENT}), which is not one of {known}")], source=label)
        if info.size > limits.max_bytes:
            raise BundleInvalid([Problem(label, None, f"is {info.size} bytes, more than the "
                                         f"size limit of {limits.max_bytes} (DEPLOYER_MAX_BUNDLE_MB)")],
                                source=label)
        sweep()
        with work_folder() as work:
            module = load_archive(ChunkReader(chunks), work, limits, label=label,
                                  expected_name=hinted, checker=services.checker
                                  ).for_environment(services.settings.environment)
            module, pins = secret_pins.pin(module, services.secrets, source=label)
            revision = Revision.of(module, services.settings.config_digest_key.reveal(),
                                   bundle=blob_name, secrets=pins)
    except BundleInvalid as exc:
        logger.warning("intake.rejected blob=%r problems=%d", blob_name, len(exc.problems))
        rejected = RunRecord(
            request_id=request_id, kind=RequestKind.DEPLOY, module=record_module, trigger=trigger,
            status=RunStatus.REJECTED, created_at=started, updated_at=services.now(),
            stages=(Stage(RequestStage.VALIDATE, StageStatus.FAILED, started, services.now()),),
            error=exc.to_dict())
        if existing is not None:
            return existing.value
        told = notices.tell(services, notices.outcome_notice(
            rejected, RunStatus.REJECTED, rejected.error, services.now(), notices.links(services)))
        created = _create_once(services, replace(rejected, notices=(told,) if told else ()))
        if record_module != REJECTED_MODULE:  # the module's history says it was refused
            services.state.append_history(HistoryEntry(
                record_module, Revision(record_module, "", ""), request_id, RequestKind.DEPLOY,
                trigger, RunStatus.REJECTED, services.now(), error=rejected.error))
        return created
    request = Request(request_id=request_id, kind=RequestKind.DEPLOY, module=revision.module,
                      trigger=trigger, revision=revision, created_at=started,
                      intent=upload_intent(info))
    validated = Stage(RequestStage.VALIDATE, StageStatus.DONE, started, services.now(),
                      {"code_digest": revision.code_digest, "config_digest": revision.config_digest})
    # also when an earlier delivery created the record and stopped before enqueueing
    record = submit(services, existing.value if existing is not None
                    else new_record(request, stages=(validated,)))
    logger.info("intake.queued blob=%r module=%s request=%s revision=%s", blob_name,
                revision.module, request_id, revision.id)
    return record


#: blob metadata the CLI sets: the uploader's own clock, to order uploads of the same second
UPLOADED_AT = "uploaded_at"
#: blob metadata naming the environment an upload deploys into (``az storage blob upload
#: --metadata environment=prod``); without it, the first environment
ENVIRONMENT = "environment"
#: blob metadata naming who uploaded it (the requester, when an approval is required)
USER = "user"


def upload_intent(info: BundleInfo) -> Intent:
    """When the bundle was uploaded: storage's time (one-second resolution), then the
    uploader's own timestamp and the blob name for uploads of the same second."""
    at = info.last_modified.replace(microsecond=0)
    return Intent(at, f"{info.metadata.get(UPLOADED_AT, '')}|{info.name}")


def _create_once(services: Services, record: RunRecord) -> RunRecord:
    """Create the run record; if a concurrent delivery created it first, return theirs."""
    try:
        services.state.create_run(record)
        return record
    except StateConflict:
        got = services.state.run(record.module, record.request_id)
        if got is None:
            raise NotFound(f"run record {record.request_id} vanished while being created") from None
        return got.value
