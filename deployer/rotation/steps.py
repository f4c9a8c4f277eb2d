"""The step driver: one queue message, one short step of one request.

    handle_step(services, message)
        take the module's step lock (held for one step only; busy: re-queue the message)
        drop the message if its request is finished or its token is stale
        admit the request (owner / wait / superseded), then plan it once
        run its operations in order, each look by look:
            a short wait that ends inside the slice is slept here;
            any other ends the step with a delayed continuation message (``looks``)
        finish: history, outcome, and the module free for the next request

Failures: a transient one (``errors.is_transient``) is raised, so that the queue delivers the
same message again; on the last attempt (``MAX_ATTEMPTS``, the host's maxDequeueCount) and for a
deterministic one the request fails: before cutover its new agent is removed and the old one
keeps serving; during cutover both are kept (deployments may point at either); after it the new
revision serves and the failure is noted.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from deployer import notices, telemetry
from deployer.errors import BundleInvalid, DeployerError, LockBusy, RevisionRefused, is_transient
from deployer.models import (
    HistoryEntry,
    RequestKind,
    RunRecord,
    RunStatus,
    StageStatus,
    Waiting,
)
from deployer.request_queue import StepMessage, new_token
from deployer.revisions.source import RevisionSource
from deployer.rotation import admission
from deployer.rotation.execute import Executor
from deployer.rotation.handback import hand_back
from deployer.rotation.inputs import gather
from deployer.rotation.looks import ADMISSION, INLINE_PAUSE_SECONDS, LOCK_BUSY_SECONDS
from deployer.rotation.operations import Operation, Phase, from_dict
from deployer.rotation.outcomes import Done
from deployer.rotation.plan import plan_rotation
from deployer.rotation.tracker import LogProgress, Progress, RunTracker
from deployer.services import Services
from deployer.urls import mask_text
from deployer.workdir import sweep

logger = logging.getLogger(__name__)
#: the host's maxDequeueCount (host.json; a test ties them): the last attempt records a failure
MAX_ATTEMPTS = 5
#: what a step may spend on its own work besides waiting (a bounded number of calls; stopping a
#: local agent gives its worker 15 s): host.json's functionTimeout covers the slice plus this
STEP_WORK_SECONDS = 120


@dataclass(frozen=True)
class StepResult:
    outcome: str  # dropped | requeued | continued | finished
    record: RunRecord | None = None
    delay: float = 0.0


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
        if record.status.finished or message.token != record.token:
            logger.info("step.dropped request=%s reason=%s", record.request_id,
                        "finished" if record.status.finished else "stale")
            return StepResult("dropped", record)
        tracker = RunTracker(services.state, record, got.etag, lock, progress or LogProgress(),
                             services.now)
        with telemetry.span("deployer.step", {
                "deployer.request_id": record.request_id, "deployer.module": record.module,
                "deployer.kind": record.kind.value, "deployer.attempt": attempt},
                record.traceparent) as current:
            result = Step(services, tracker, attempt).run()
            current.set_attribute("deployer.outcome", result.record.status.value if result.record
                                  else result.outcome)
            return result
    finally:
        lock.__exit__(None, None, None)


class Step:
    def __init__(self, services: Services, tracker: RunTracker, attempt: int) -> None:
        self.s = services
        self.t = tracker
        self.attempt = attempt
        self.request = tracker.record.as_request()
        self.started = services.now()
        self.deadline = self.started + timedelta(seconds=services.settings.step_slice_seconds)

    @property
    def record(self) -> RunRecord:
        return self.t.record

    def run(self) -> StepResult:
        self.t.update(steps=self.record.steps + 1, attempts=self.attempt)
        try:
            with RevisionSource(self.s, self.request) as source:
                if self.record.status in (RunStatus.QUEUED, RunStatus.WAITING):
                    result = self.admit(source)
                    if result is not None:
                        return result
                return self.operate(source)
        except Exception as exc:
            if is_transient(exc) and self.attempt < MAX_ATTEMPTS:
                logger.warning("step.retry request=%s attempt=%d error=%s",
                               self.request.request_id, self.attempt, _brief(exc))
                raise
            return self.fail(exc)

    # -- admission and plan -----------------------------------------------------------------

    def admit(self, source: RevisionSource) -> StepResult | None:
        looked = self.s.now()  # before admission reads the pending list
        verdict = admission.admit(self.s, self.record)
        if isinstance(verdict, admission.Superseded):
            if self.record.stage("wait") is not None:
                self.t.finish("wait", {"superseded_by": verdict.by})
            error = self.removed_since(verdict.by) if verdict.removal else None
            self.t.progress.note(error["message"] if error else
                                 f"superseded by the newer request {verdict.by}")
            self.append_history(RunStatus.SUPERSEDED, error, superseded_by=verdict.by)
            return self.end(RunStatus.SUPERSEDED, error, superseded_by=verdict.by)
        if isinstance(verdict, admission.MustWait):
            owner = verdict.owner.request_id
            looks = int(self.t.begun("wait").get("looks", 0))
            if self.record.stage("wait") is None:
                self.t.start("wait", {"owner": owner})
            self.t.progress.note(f"module {self.request.module} is busy with request {owner}: "
                                 "waiting for it")
            return self.continue_later(ADMISSION.pause(looks), f"module {self.request.module} "
                                       f"is busy with request {owner}", owner, status=RunStatus.WAITING,
                                       stage="wait", looks=looks + 1)
        if self.record.stage("wait") is not None and self.t.done("wait") is None:
            self.t.finish("wait")
        self.make_plan(source, admitted=looked)
        return None

    def removed_since(self, removal: str) -> dict[str, Any]:
        got = self.s.state.module(self.request.module)
        removed = got.value.removed if got else None
        when = f" at {removed.at:%Y-%m-%d %H:%M:%S} UTC" if removed else ""
        return {"code": "superseded_by_removal", "message": (
            f"module {self.request.module} was removed{when} (request {removal}), after this "
            "request was made: it does not bring the module back"),
            "hint": f"to deploy {self.request.module} again, upload it again or `deployer deploy "
            f"flows/{self.request.module}`"}

    def make_plan(self, source: RevisionSource, admitted: datetime | None = None) -> None:
        self.t.start("plan")
        if self.request.kind is RequestKind.REDEPLOY:
            self.refresh_configuration(source)
        refusal = self.refused()
        if refusal is not None:
            raise refusal
        module = source.module
        conflicts = self.s.orchestrator.conflicts(self.request.module, module.deployments)
        if conflicts:  # refused before anything starts, not at cutover
            raise BundleInvalid(conflicts, source=f"module {self.request.module}")
        inputs = gather(self.s, self.request, module)
        plan = plan_rotation(inputs)
        self.t.finish("plan", {"noop": plan.noop, "reason": plan.reason, "path": plan.path,
                               "changed": list(plan.changed), "why": inputs.parts_why,
                               "new_agent": plan.new_agent, "steps": plan.steps(),
                               "files": len(module.tree.files),
                               "admitted_at": admitted.isoformat() if admitted else ""},
                      changes={"status": RunStatus.RUNNING, "plan": plan.to_data(), "waiting": None})
        self.t.progress.note(f"plan: {plan.reason}")

    def refused(self) -> DeployerError | None:
        """A revision rolled back on its own comes back only when asked for explicitly (a
        rollback, or ``deployer deploy``), never through a push or a re-upload."""
        got = self.s.state.module(self.request.module)
        refused = got.value.refusal(self.request.revision) if got else None
        explicit = self.request.kind is RequestKind.ROLLBACK or \
            self.request.trigger.detail.get("explicit") == "true"
        if refused is None or explicit:
            return None
        return RevisionRefused(
            f"revision {refused.revision_id} of {self.request.module} was rolled back on its own "
            f"at {refused.at:%Y-%m-%d %H:%M} UTC by request {refused.request_id}: {refused.reason}; "
            "a push or a re-upload of it does not bring it back",
            hint=f"to deploy it anyway, ask explicitly: `deployer deploy flows/{self.request.module}` "
            f"or `deployer rollback {self.request.module} --to {refused.revision_id}`")

    def refresh_configuration(self, source: RevisionSource) -> None:
        """A pushed image runs with the module's configuration as it is now (the newest bundle
        that became current), not as it was when the push arrived."""
        got = self.s.state.module(self.request.module)
        current = got.value.current if got else None
        revision = self.request.revision
        if current is None or (current.config_digest, current.bundle) == \
                (revision.config_digest, revision.bundle):
            return
        revision = replace(revision, config_digest=current.config_digest, bundle=current.bundle)
        self.request = replace(self.request, revision=revision)
        source.retarget(self.request)
        self.t.update(revision=revision)

    # -- operations -------------------------------------------------------------------------

    def operate(self, source: RevisionSource) -> StepResult:
        plan = [from_dict(d) for d in self.record.plan]
        executor = Executor(self.s, self.request, self.t, source, tuple(plan))
        index = 0
        while index < len(plan):
            op = plan[index]
            index += 1
            if self.t.done(op.key) is not None:
                continue
            if self.s.now() >= self.deadline:
                return self.continue_later(0, f"next: {op.describe()}", op.key)
            looks = int(self.t.begun(op.key).get("looks", 0))
            self.t.start(op.key)
            while True:
                with telemetry.span(f"deployer.stage {op.kind}", {
                        "deployer.request_id": self.request.request_id,
                        "deployer.module": self.request.module, "deployer.stage": op.key,
                        "deployer.look": looks}):
                    outcome = executor.look(op, looks)
                looks += 1
                if isinstance(outcome, Done):
                    if outcome.replan is not None:
                        plan = [*plan[:index], *outcome.replan]
                        executor.plan = tuple(plan)
                    self.done(op, outcome, plan)
                    if op.kind == "commit" and outcome.detail.get("woke"):
                        # others wait for this module: end the step, so that its lock is free
                        return self.continue_later(0, "cut over; the module is free", op.key)
                    break
                if outcome.inline and outcome.pause <= INLINE_PAUSE_SECONDS and \
                        self.s.now() + timedelta(seconds=outcome.pause) <= self.deadline:
                    self.t.progress.note(outcome.what)
                    self.s.sleep(outcome.pause)
                    continue
                self.t.progress.note(outcome.what)
                return self.continue_later(outcome.pause, outcome.what, op.key, stage=op.key,
                                           looks=looks, detail=outcome.detail)
        return self.finish(plan)

    def done(self, op: Operation, outcome: Done, plan: list[Operation]) -> None:
        """Record a finished operation; after commit and bake, the request's status and history
        say where it stands (baking, draining; succeeded or rolled back)."""
        status = StageStatus.SKIPPED if outcome.skipped else StageStatus.DONE
        changes: dict[str, Any] = {}
        if outcome.replan is not None:
            changes["plan"] = tuple(o.to_dict() for o in plan)
        baking = any(o.kind == "bake" for o in plan)
        drains = any(o.kind == "drain" for o in plan)
        if op.kind == "commit":
            changes["status"] = RunStatus.BAKING if baking else (
                RunStatus.DRAINING if drains else RunStatus.RUNNING)
        elif op.kind == "bake":
            changes["status"] = RunStatus.DRAINING if drains else RunStatus.RUNNING
        self.t.finish(op.key, outcome.detail, status, changes)
        if op.kind == "commit" and not baking:
            self.append_history(RunStatus.SUCCEEDED, None)
        elif op.kind == "bake":
            if outcome.detail.get("outcome") == "removed":
                removal = str(outcome.detail.get("by", ""))
                self.append_history(RunStatus.REMOVED, {
                    "code": "removed", "message": f"module {self.request.module} was removed "
                    f"(request {removal}) while revision {self.request.revision.id} was baking"})
                self.t.progress.note(f"the module was removed by request {removal}: the bake ends")
            elif outcome.detail.get("outcome") == "rolled_back":
                self.append_history(RunStatus.ROLLED_BACK, {
                    "code": "rolled_back", "message": outcome.detail.get("reason", ""),
                    "runs": outcome.detail.get("runs", [])})
                self.t.progress.note(f"rolled back: {outcome.detail.get('reason', '')}")
            else:
                self.append_history(RunStatus.SUCCEEDED, None)

    def continue_later(self, pause: float, what: str, on: str, *,
                       status: RunStatus | None = None, stage: str = "", looks: int = 0,
                       detail: dict[str, Any] | None = None) -> StepResult:
        """Send the next look's message (delayed), then record its token: see ``messages``."""
        token = new_token()
        delay = math.ceil(pause)
        self.s.queue.send(StepMessage(self.request.module, self.request.request_id, token).encode(),
                          delay_seconds=delay)
        now = self.s.now()
        previous = self.record.waiting
        since = previous.since if previous is not None and previous.on == on else now
        waiting = Waiting(what, since, now + timedelta(seconds=delay), on)
        changes: dict[str, Any] = {"token": token, "waiting": waiting}
        if not on.startswith(("drain", "bake")):  # those wait by design
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

    def finish(self, plan: list[Operation]) -> StepResult:
        committed = any(op.kind == "commit" for op in plan)
        baked = (self.t.done("bake") or {}).get("outcome")
        status = RunStatus.ROLLED_BACK if baked == "rolled_back" else RunStatus.REMOVED \
            if baked == "removed" else (RunStatus.SUCCEEDED if committed else RunStatus.NOOP)
        return self.end(status, self.record.error)

    def end(self, status: RunStatus, error: dict[str, Any] | None, **changes: Any) -> StepResult:
        """The request's last word: its outcome recorded, the module let go of (waking whoever
        waits), and its pending entry removed."""
        record = self.t.end(status, error, **changes)
        admission.release(self.s, self.request.module, self.request.request_id)
        self.s.state.remove_pending(self.request.module, self.request.request_id)
        return StepResult("finished", record)

    # -- failure ----------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> StepResult:
        error = exc.to_dict() if isinstance(exc, DeployerError) else {
            "code": "internal_error", "message": f"{type(exc).__name__}: {_brief(exc)}"}
        logger.error("step.failed request=%s code=%s", self.request.request_id, error["code"])
        if isinstance(exc, RevisionRefused):  # nothing was attempted
            self.t.finish("plan", {"refused": True}, StageStatus.FAILED)
            self.append_history(RunStatus.REJECTED, error)
            return self.end(RunStatus.REJECTED, error)
        phase = self.phase()
        if phase is Phase.RETIRE:
            return self.fail_retiring(error)
        if phase is Phase.CUTOVER and not self.revert():
            self.t.progress.note("cutover was interrupted and could not be undone: both agents "
                                 "are kept, since deployments may point at either; deploy again "
                                 "or roll back")
        elif phase is not Phase.RETIRE:
            self.remove_new_agent()
        for stage in self.record.stages:
            if stage.status is StageStatus.RUNNING:
                self.t.finish(stage.name, {"error": error["message"]}, StageStatus.FAILED)
        self.append_history(RunStatus.FAILED, error)
        return self.end(RunStatus.FAILED, error)

    def fail_retiring(self, error: dict[str, Any]) -> StepResult:
        """The new revision serves already; what failed is retiring an old agent. The request
        succeeded; the failure is noted, and the nightly cleanup retires what is left."""
        for stage in self.record.stages:
            if stage.status is StageStatus.RUNNING:
                self.t.finish(stage.name, {"error": error["message"]}, StageStatus.FAILED)
        note = {**error, "message": f"deployed, but retiring an old agent failed: "
                f"{error['message']} (the nightly cleanup retires it)"}
        return self.end(RunStatus.SUCCEEDED, note)

    def phase(self) -> Phase:
        plan = [from_dict(d) for d in self.record.plan]
        if any(op.kind == "commit" and self.t.done(op.key) is not None for op in plan):
            return Phase.RETIRE
        if any(op.phase is Phase.CUTOVER and self.record.stage(op.key) is not None for op in plan):
            return Phase.CUTOVER
        return Phase.PREPARE

    def revert(self) -> bool:
        """During cutover (after the deployments were re-pointed, before commit): hand them
        back to the agent that serves (``handback``). False when that failed too."""
        new = self.t.begun("start-agent").get("queue", "")
        got = self.s.state.module(self.request.module)
        doc = got.value if got else None
        previous = doc.current if doc else None
        previous_queue = doc.agent.queue if doc and doc.agent else ""
        try:
            for op in (from_dict(d) for d in self.record.plan):
                if op.kind == "hold-queue" and self.record.stage(op.key) is not None:
                    self.s.orchestrator.resume_queue(self.request.module, op.queue)  # type: ignore[attr-defined]
            handed = hand_back(self.s, self.request.module, previous=previous,
                               previous_queue=previous_queue, new_queue=new)
        except DeployerError as exc:
            logger.warning("step.revert_failed request=%s error=%s", self.request.request_id,
                           exc.message)
            return False
        self.t.update(stages=tuple(
            replace(st, detail={**st.detail, "reverted": handed}) if st.name == "register" else st
            for st in self.record.stages))
        self.t.progress.note("cutover undone: the deployments point at the serving agent again")
        return True

    def remove_new_agent(self) -> None:
        """Before cutover: remove the new agent (if it was started); the old one keeps serving."""
        name = self.t.begun("start-agent").get("agent")
        if not name:
            return
        try:
            self.s.runtime.stop(name)
            self.s.orchestrator.delete_queue(self.request.module, name)
            self.t.progress.note(f"rolled back: agent {name} removed, the old agent keeps serving")
        except DeployerError as exc:  # cleanup retires it later; never mask the real failure
            logger.warning("step.rollback_failed agent=%s error=%s", name, exc.message)

    def append_history(self, outcome: RunStatus, error: dict[str, Any] | None, *,
                       superseded_by: str = "") -> None:
        """The request's outcome in the module's history (once), and told to whoever listens."""
        state = self.s.state
        if any(e.request_id == self.request.request_id for e in state.history(self.request.module)):
            return
        timings = {s.name: round(s.seconds, 3) for s in self.record.stages if s.seconds is not None}
        revision = self.request.revision
        for key in ("build", "reuse-image"):
            image = (self.t.done(key) or {}).get("image")
            if image:
                revision = replace(revision, image=image["ref"], image_digest=image.get("digest", ""))
        if not revision.image:  # a code-only revision: it runs in the image it was committed with
            got = state.module(self.request.module)
            current = got.value.current if got else None
            if current is not None and current.id == revision.id:
                revision = replace(revision, image=current.image, image_digest=current.image_digest)
        plan = self.t.begun("plan")
        state.append_history(HistoryEntry(
            module=self.request.module, revision=revision, request_id=self.request.request_id,
            kind=self.request.kind, trigger=self.request.trigger, outcome=outcome, at=self.s.now(),
            stages=timings, error=error, changed=tuple(plan.get("changed", ())),
            path=str(plan.get("path", ""))))
        told = notices.tell(self.s, notices.outcome_notice(
            replace(self.record, superseded_by=superseded_by or self.record.superseded_by),
            outcome, error, self.s.now(), notices.links(self.s)))
        if told is not None:
            self.t.update(notices=(*self.record.notices, told))


def _brief(exc: BaseException) -> str:
    return mask_text((str(exc) or type(exc).__name__).splitlines()[0])[:300]
