"""One step of one request: what the engine, admission-and-plan, the ending and the failure
policy share. A step either continues later (its next look's message on the queue, delayed) or
ends the request."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from deployer import notices
from deployer.models import Request, RunRecord, RunStatus, Waiting
from deployer.request_queue import message, new_token
from deployer.rotation import admission
from deployer.rotation.operations import Bake, Drain
from deployer.rotation.tracker import RunTracker
from deployer.services import Services

logger = logging.getLogger(__name__)
#: waits that last by design (a drain, a bake window): never told of as stuck
BY_DESIGN = (Drain.kind, Bake.kind)


@dataclass(frozen=True)
class StepResult:
    outcome: str  # dropped | requeued | continued | finished
    record: RunRecord | None = None
    delay: float = 0.0


@dataclass
class Step:
    s: Services
    t: RunTracker
    attempt: int
    request: Request
    #: the step ends (with a continuation) once a look would start after this
    deadline: datetime

    @classmethod
    def begin(cls, services: Services, tracker: RunTracker, attempt: int) -> Step:
        started = services.now()
        return cls(services, tracker, attempt, tracker.record.as_request(),
                   started + timedelta(seconds=services.settings.step_slice_seconds))

    @property
    def record(self) -> RunRecord:
        return self.t.record

    def continue_later(self, pause: float, what: str, on: str, *,
                       status: RunStatus | None = None, stage: str = "", looks: int = 0,
                       detail: dict[str, Any] | None = None) -> StepResult:
        """Send the next look's message (delayed), then record its token: see
        ``request_queue``."""
        token = new_token()
        delay = math.ceil(pause)
        self.s.queue.send(message(self.s, self.request.module, self.request.request_id, token),
                          delay_seconds=delay)
        now = self.s.now()
        previous = self.record.waiting
        since = previous.since if previous is not None and previous.on == on else now
        waiting = Waiting(what, since, now + timedelta(seconds=delay), on)
        changes: dict[str, Any] = {"token": token, "waiting": waiting}
        if not on.startswith(BY_DESIGN):
            told = notices.tell(self.s, notices.stuck_notice(self.record, what, since, now,
                                                             notices.links(self.s)))
            if told is not None:
                changes["notices"] = (*self.record.notices, {**told, "since": since.isoformat()})
        if status is not None:
            changes["status"] = status
        if stage:
            self.t.checkpoint(stage, {**(detail or {}), "looks": looks}, changes)
        else:
            self.t.update(**changes)
        logger.info("step.continue request=%s on=%s delay=%ds", self.request.request_id, on, delay)
        return StepResult("continued", self.record, delay)

    def end(self, status: RunStatus, error: dict[str, Any] | None, **changes: Any) -> StepResult:
        """The request's last word: its outcome recorded, the module let go of (waking whoever
        waits), and its pending entry removed."""
        record = self.t.end(status, error, **changes)
        admission.release(self.s, self.request.module, self.request.request_id)
        self.s.state.remove_pending(self.request.module, self.request.request_id)
        return StepResult("finished", record)
