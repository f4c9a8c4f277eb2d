"""Messages on the request queue, and how a request gets onto it.

A message names a request and carries a *token*: the run record stores the token of the one
message the request expects next, so every other message for it (a duplicate, a continuation
that an earlier crashed step sent but never recorded, a fallback look made needless by a wake-up)
is stale and dropped. A step sends its continuation first and records its token second: a crash
in between leaves the current message to be delivered again, never a request with no message.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace

from deployer import codec, telemetry
from deployer.approval import Approval
from deployer.errors import StateConflict, StateCorrupt
from deployer.models import (
    Claim,
    Intent,
    Request,
    RequestKind,
    RequestStage,
    RunRecord,
    RunStatus,
    Stage,
    StageStatus,
)
from deployer.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepMessage:
    module: str
    request_id: str
    token: str = ""
    #: the environment whose state holds the request ("": the installation's only one)
    environment: str = ""

    def encode(self) -> bytes:
        return codec.dumps(self)


def message(services: Services, module: str, request_id: str, token: str) -> bytes:
    """A step message for a request of ``services``' environment."""
    return StepMessage(module, request_id, token, services.settings.environment).encode()


def peek_environment(body: bytes) -> str:
    """The environment a message names ("" when none, or when it is not a step message)."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    value = data.get("environment") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def new_token() -> str:
    return uuid.uuid4().hex


def decode(services: Services, body: bytes, *, where: str) -> StepMessage:
    """A step message; a whole ``Request`` (what deployers before steps enqueued) becomes the
    first step of its request. Raises ``StateCorrupt`` for anything else."""
    try:
        return codec.loads(StepMessage, body, where=where)
    except StateCorrupt as first:
        try:
            request = codec.loads(Request, body, where=where)
        except StateCorrupt:
            raise first from None
    if services.state.run(request.module, request.request_id) is None:
        try:
            record = new_record(request, token="")
            record = approval_needed(services, record) or record  # held there too
            services.state.create_run(record)
            services.state.add_pending(request.module, Claim(
                request.request_id, request.kind, record.intent_or_created, services.now()))
        except StateConflict:
            pass
    return StepMessage(request.module, request.request_id, "", services.settings.environment)


def new_record(request: Request, *, token: str | None = None,
               stages: tuple[Stage, ...] = ()) -> RunRecord:
    now = request.created_at  # the record is made with its request
    return RunRecord(request_id=request.request_id, kind=request.kind, module=request.module,
                     trigger=request.trigger, status=RunStatus.QUEUED, created_at=now,
                     updated_at=now, revision=request.revision, stages=stages,
                     intent=request.intent or Intent(request.created_at),
                     token=new_token() if token is None else token,
                     traceparent=telemetry.new_traceparent())


#: what waits for an approval where one is required: what someone asked for (an automatic
#: rollback after a failed bake never waits: it restores what was approved before)
GATED = (RequestKind.DEPLOY, RequestKind.REDEPLOY, RequestKind.PROMOTE, RequestKind.ROLLBACK)


def approval_needed(services: Services, record: RunRecord) -> RunRecord | None:
    """The record as it waits for its approval, when its environment requires one and it has
    none yet; else None."""
    if services.settings.approval == "none" or record.kind not in GATED \
            or record.trigger.source == "auto-rollback" or record.status is not RunStatus.QUEUED \
            or (record.approval is not None and record.approval.decision == "approved"):
        return None
    return replace(record, status=RunStatus.AWAITING_APPROVAL, token="",
                   approval=Approval(requested_by=str(record.trigger.detail.get("user", ""))))


def supersede_awaiting(services: Services, record: RunRecord) -> None:
    """A newer request for the module supersedes the older ones still awaiting their approval,
    at once (status and the matrix stop showing them as waiting)."""
    for older in services.state.runs(record.module):
        if older.status is RunStatus.AWAITING_APPROVAL and older.request_id != record.request_id \
                and record.intent_or_created.newer_than(older.intent_or_created):
            got = services.state.run(older.module, older.request_id)
            if got is None or got.value.status is not RunStatus.AWAITING_APPROVAL:
                continue
            try:
                services.state.save_run(replace(got.value, status=RunStatus.SUPERSEDED,
                                                superseded_by=record.request_id,
                                                updated_at=services.now()), got.etag)
            except StateConflict:  # decided meanwhile: that decision stands
                continue


def submit(services: Services, record: RunRecord) -> RunRecord:
    """Create the request's run record (unless a concurrent delivery did) and put its first
    message on the queue, once: a redelivered trigger that finds the record already enqueued
    sends nothing more."""
    state = services.state
    held = approval_needed(services, record)
    if held is not None:
        record = held
    try:
        state.create_run(record)
    except StateConflict:
        got = state.run(record.module, record.request_id)
        if got is None:
            raise
        record = got.value
    else:
        if held is not None:
            from deployer.notices import tell_awaiting

            tell_awaiting(services, record)
        if services.settings.approval != "none":
            supersede_awaiting(services, record)
    if record.status is not RunStatus.QUEUED or record.stage(RequestStage.ENQUEUE) is not None:
        return record
    # listed as pending before its message exists: admission sees it from its first step on
    state.add_pending(record.module, Claim(record.request_id, record.kind,
                                           record.intent_or_created, services.now()))
    # a crash between send and checkpoint sends twice: both messages carry the same token, and
    # the step lock lets only one of them act
    services.queue.send(message(services, record.module, record.request_id, record.token))
    got = state.run(record.module, record.request_id)
    if got is None or got.value.status is not RunStatus.QUEUED:
        return got.value if got else record  # a step already moved it on
    now = services.now()
    updated = got.value.with_stage(Stage(RequestStage.ENQUEUE, StageStatus.DONE, now, now))
    try:
        state.save_run(updated, got.etag)
    except StateConflict:
        return record  # a step picked it up meanwhile; its record wins
    return updated
