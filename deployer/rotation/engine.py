"""The engine: one queue message, one short step of one request.

    handle_step(services, message)
        take the module's step lock (held for one step only; busy: re-queue the message)
        drop the message if its request is finished or its token is stale
        admit the request (owner / wait / superseded), then plan it once   (``planning``)
        run its operations in order, each look by look, through the handler table
            a short wait that ends inside the slice is slept here;
            any other ends the step with a delayed continuation message (``looks``)
        what an operation's end means for the request: status, history, notice   (``ending``)

Failures: a transient one (``errors.is_transient``) is raised, so that the queue delivers the
same message again; on the last attempt (``MAX_ATTEMPTS``, the host's maxDequeueCount) and for a
deterministic one the request fails by its phase (``failure``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from deployer import telemetry
from deployer.errors import LockBusy, is_transient
from deployer.models import RunStatus
from deployer.request_queue import StepMessage
from deployer.revisions.source import RevisionSource
from deployer.rotation import handlers
from deployer.rotation.context import Context
from deployer.rotation.ending import finish, record_done
from deployer.rotation.failure import brief, fail
from deployer.rotation.looks import INLINE_PAUSE_SECONDS, LOCK_BUSY_SECONDS
from deployer.rotation.operations import Commit, from_dict
from deployer.rotation.outcomes import Done
from deployer.rotation.planning import admit
from deployer.rotation.results import Committed
from deployer.rotation.step import Step, StepResult
from deployer.rotation.tracker import LogProgress, Progress, RunTracker
from deployer.services import Services
from deployer.workdir import sweep

logger = logging.getLogger(__name__)
#: the host's maxDequeueCount (host.json; a test ties them): the last attempt records a failure
MAX_ATTEMPTS = 5
#: what a step may spend on its own work besides waiting (a bounded number of calls; stopping a
#: local agent gives its worker 15 s): host.json's functionTimeout covers the slice plus this
STEP_WORK_SECONDS = 120


def handle_step(services: Services, message: StepMessage, *, attempt: int = 1,
                progress: Progress | None = None) -> StepResult:
    sweep()
    lock = services.state.lock(message.module)
    try:
        lock.__enter__()
    except LockBusy:
        # another step of this module runs (steps are short): look again in a moment, with the
        # same token, so this is neither a failure nor a second message
        services.queue.send(message.encode(), delay_seconds=LOCK_BUSY_SECONDS)
        logger.info("step.requeued module=%s request=%s reason=lock", message.module,
                    message.request_id)
        return StepResult("requeued", None, LOCK_BUSY_SECONDS)
    try:
        got = services.state.run(message.module, message.request_id)
        if got is None:
            logger.error("step.dropped module=%s request=%s reason=no-record", message.module,
                         message.request_id)
            return StepResult("dropped")
        record = got.value
        # nothing acts on a request awaiting its approval (``pipeline.approvals``)
        if record.status.finished or message.token != record.token \
                or record.status is RunStatus.AWAITING_APPROVAL:
            logger.info("step.dropped request=%s reason=%s", record.request_id,
                        "finished" if record.status.finished else "stale")
            return StepResult("dropped", record)
        tracker = RunTracker(services.state, record, got.etag, lock, progress or LogProgress(),
                             services.now)
        with telemetry.span("deployer.step", {
                "deployer.request_id": record.request_id, "deployer.module": record.module,
                "deployer.kind": record.kind.value, "deployer.attempt": attempt},
                record.traceparent) as current:
            result = run(Step.begin(services, tracker, attempt))
            current.set_attribute("deployer.outcome", result.record.status.value if result.record
                                  else result.outcome)
            return result
    finally:
        lock.__exit__(None, None, None)


def run(step: Step) -> StepResult:
    step.t.update(steps=step.record.steps + 1, attempts=step.attempt)
    try:
        with RevisionSource(step.s, step.request) as source:
            if step.record.status in (RunStatus.QUEUED, RunStatus.WAITING):
                result = admit(step, source)
                if result is not None:
                    return result
            return operate(step, source)
    except Exception as exc:
        if is_transient(exc) and step.attempt < MAX_ATTEMPTS:
            logger.warning("step.retry request=%s attempt=%d error=%s", step.request.request_id,
                           step.attempt, brief(exc))
            raise
        return fail(step, exc)


def operate(step: Step, source: RevisionSource) -> StepResult:
    """The plan's operations in order, each look by look, until one must wait past this step."""
    plan = [from_dict(d) for d in step.record.plan]
    ctx = Context(step.s, step.request, step.t, source, tuple(plan))
    index = 0
    while index < len(plan):
        op = plan[index]
        index += 1
        if step.t.done(op.key) is not None:
            continue
        if step.s.now() >= step.deadline:
            return step.continue_later(0, f"next: {op.describe()}", op.key)
        looks = int(step.t.begun(op.key).get("looks", 0))
        step.t.start(op.key)
        while True:
            with telemetry.span(f"deployer.stage {op.kind}", {
                    "deployer.request_id": step.request.request_id,
                    "deployer.module": step.request.module, "deployer.stage": op.key,
                    "deployer.look": looks}):
                outcome = handlers.look(ctx, op, looks)
            looks += 1
            if isinstance(outcome, Done):
                if outcome.replan is not None:
                    plan = [*plan[:index], *outcome.replan]
                    ctx.plan = tuple(plan)
                record_done(step, op, outcome, plan)
                if isinstance(op, Commit) and isinstance(outcome.result, Committed) \
                        and outcome.result.woke:
                    # others wait for this module: end the step, so that its lock is free
                    return step.continue_later(0, "cut over; the module is free", op.key)
                break
            if outcome.inline and outcome.pause <= INLINE_PAUSE_SECONDS and \
                    step.s.now() + timedelta(seconds=outcome.pause) <= step.deadline:
                step.t.progress.note(outcome.what)
                step.s.sleep(outcome.pause)
                continue
            step.t.progress.note(outcome.what)
            return step.continue_later(outcome.pause, outcome.what, op.key, stage=op.key,
                                       looks=looks, detail=outcome.detail)
    return finish(step, plan)
