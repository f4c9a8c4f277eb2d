"""The registry's push notifications: authenticate, parse, and turn a push of a module's image
into a redeploy request, answered at once (the rotation runs from the queue).

A push is ignored (acknowledged, nothing changes) when its repository is no module's, when the
module has nothing deployed yet, when it is the pipeline's own push of an image it is building,
when the newest push request still in progress has the same digest (a storm of pushes), when the
digest is already current and no other push is in progress, or when the same event was handled
before (a replay). Redeploys are keyed by (repository, digest, event id) and ordered by the
registry's event time: the last push is the image serving at the end (``rotation.admission``).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import Any

from deployer import notices
from deployer.bundle.contract import MODULE_NAME
from deployer.bundle.digest import short
from deployer.errors import DeployerError
from deployer.models import (
    Intent,
    ModuleState,
    Request,
    RequestKind,
    Revision,
    RunRecord,
    Trigger,
)
from deployer.ports.images import is_build_cache
from deployer.request_queue import new_record, submit
from deployer.services import Services, each_environment
from deployer.webhooks import Other, Ping, Push, Validation, WebhookInvalid, parse

logger = logging.getLogger(__name__)
TOKEN_HEADER = "x-deployer-webhook-token"  # noqa: S105 - a header name, not a secret


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def receive_webhook(services: Services, method: str, headers: dict[str, str], body: bytes) -> Reply:
    """The body of a call is parsed only once its caller is authenticated (the shared-secret
    header), except Event Grid's subscription handshake, which Event Grid marks with its
    ``aeg-event-type`` header and answers nothing but the code it was sent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if method.upper() == "OPTIONS":  # the CloudEvents abuse-protection handshake
        origin = lowered.get("webhook-request-origin", "")
        return Reply(200, {}, {"WebHook-Allowed-Origin": origin} if origin else {})
    authorized = _authorized(services, lowered.get(TOKEN_HEADER, ""))
    handshake = lowered.get("aeg-event-type", "").lower() == "subscriptionvalidation"
    if not authorized and not handshake:
        logger.warning("webhook.unauthorized bytes=%d", len(body))
        notices.tell(services, notices.unauthorised_notice(lowered.get("x-forwarded-for", ""),
                                                           "/api/acr-webhook"))
        return Reply(401, {"error": f"missing or wrong {TOKEN_HEADER} header"})
    try:
        events = parse(body)
    except WebhookInvalid as exc:
        return Reply(400, {"error": exc.message})
    validations = [e for e in events if isinstance(e, Validation)]
    if validations:  # Event Grid's subscription handshake: echoing its code changes nothing
        return Reply(200, {"validationResponse": validations[0].code})
    if not authorized:
        logger.warning("webhook.unauthorized events=%d", len(events))
        notices.tell(services, notices.unauthorised_notice(lowered.get("x-forwarded-for", ""),
                                                           "/api/acr-webhook"))
        return Reply(401, {"error": f"missing or wrong {TOKEN_HEADER} header"})
    accepted: list[dict[str, str]] = []
    ignored: list[dict[str, str]] = []
    try:
        for event in events:
            if isinstance(event, Ping):
                ignored.append({"event": event.event_id, "reason": "ping"})
            elif isinstance(event, Other):
                ignored.append({"event": event.event_id, "reason": f"{event.what}: not acted on"})
            elif isinstance(event, Push):
                outcome = handle_push(services, event)
                (accepted if "request_id" in outcome else ignored).append(outcome)
    except DeployerError as exc:
        logger.error("webhook.failed error=%s", exc.message)
        return Reply(502, {"error": exc.message, "accepted": accepted})
    status = 202 if accepted else 200
    return Reply(status, {"accepted": accepted, "ignored": ignored})


def _authorized(services: Services, given: str) -> bool:
    expected = services.settings.webhook_token.reveal()
    if not expected:
        logger.error("webhook.not_configured: DEPLOYER_WEBHOOK_TOKEN is not set; refusing all calls")
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def module_of(services: Services, repository: str) -> str | None:
    prefix = f"{services.settings.image_repository}/"
    if not repository.startswith(prefix):
        return None
    module = repository[len(prefix):]
    return module if MODULE_NAME.match(module) else None


def handle_push(services: Services, push: Push) -> dict[str, str]:
    base = {"event": push.event_id, "repository": push.repository, "digest": push.digest}
    module = module_of(services, push.repository)
    if module is None:
        return {**base, "reason": f"repository {push.repository} is no module's "
                f"(expected {services.settings.image_repository}/<module>)"}
    if is_build_cache(push.tag):
        return {**base, "reason": f"{push.tag} is ACR Tasks' build cache of {module}'s image "
                "(pushed by its own builds), not an image to run"}
    got = services.state.module(module)
    state = got.value if got else None
    if state is None or state.current is None:
        return {**base, "reason": f"module {module} has nothing deployed yet: deploy its bundle "
                "first (its .env and prefect.yaml come from there)"}
    request_id = Request.make_id("acr-push", push.repository, push.digest, push.event_id)
    existing = services.state.run(module, request_id)
    if existing is not None:
        return {**base, "reason": f"already handled as request {request_id} ({existing.value.status})"}
    unfinished = [r for r in services.state.runs(module) if not r.status.finished]
    # the image a deploy of any environment builds (images are shared): never a redeploy here
    building = _own_build([r for env in each_environment(services) for r in env.state.runs(module)
                           if not r.status.finished], push)
    if building is not None:
        return {**base, "reason": f"the pipeline's own push of the image request {building} builds"}
    pushes = sorted((r for r in unfinished if r.kind is RequestKind.REDEPLOY),
                    key=lambda r: (r.intent_or_created.at, r.intent_or_created.tiebreak))
    if pushes and pushes[-1].revision is not None and pushes[-1].revision.image_digest == push.digest:
        return {**base, "reason": f"already in progress as request {pushes[-1].request_id}"}
    if not pushes and _is_current(state, push):
        return {**base, "reason": f"already current for module {module}"}
    current = state.current
    tagged = f"{push.repository}:{push.tag}" if push.tag else push.repository
    reference = f"{tagged}@{push.digest}"
    revision = Revision(module=module, code_digest=_code_of(services, module, push),
                        config_digest=current.config_digest, image=reference,
                        image_digest=push.digest, bundle=current.bundle)
    now = services.now()
    request = Request(request_id, RequestKind.REDEPLOY, module,
                      Trigger("webhook", push.event_id, {"source": push.source, "repository": push.repository,
                                                          "tag": push.tag, "digest": push.digest}),
                      revision, now, Intent(push.at or now, push.event_id))
    submit(services, new_record(request))
    logger.info("webhook.queued module=%s request=%s digest=%s", module, request_id, short(push.digest))
    return {**base, "module": module, "request_id": request_id}


def _is_current(state: ModuleState, push: Push) -> bool:
    current = state.current
    assert current is not None
    if current.image_digest:
        return current.image_digest == push.digest
    return bool(push.tag) and image_tag(current.image) == push.tag  # local images: by tag


def _own_build(records: list[RunRecord], push: Push) -> str | None:
    """A bundle deploy in progress whose image this push is (its tag is the digest of the
    revision's dependencies, or of its code when its image carries the code)."""
    for record in records:
        revision = record.revision
        if record.kind is RequestKind.DEPLOY and revision is not None and push.tag \
                and push.tag in {short(revision.code_digest), short(revision.deps_digest)}:
            return record.request_id
    return None


def _code_of(services: Services, module: str, push: Push) -> str:
    """The code inside an image we built: that of the first revision that ran it (later
    code-only revisions reuse the image but pull their code); else the image's own digest."""
    if push.tag:
        history = services.state.history(module)
        for entry in history:
            if image_tag(entry.revision.image) == push.tag:
                return entry.revision.code_digest
        for entry in reversed(history):  # recorded before images were named by dependencies
            if short(entry.revision.code_digest) == push.tag:
                return entry.revision.code_digest
    return f"oci:{push.digest.split(':', 1)[1]}"


def image_tag(reference: str) -> str:
    """``registry/repo:tag@sha256:...`` -> ``tag``; a local image's folder name is its tag."""
    last = reference.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.rsplit(":", 1)[-1]
