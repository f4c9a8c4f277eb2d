"""What an operation's end means for its request: the commit and the bake window settle it (its
status, its entry in history, the notice), and the last operation finishes it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from deployer import codec, notices
from deployer.models import HistoryEntry, RequestStage, RunRecord, RunStatus, StageStatus
from deployer.ports.notifications import Notice
from deployer.rotation.context import result_of
from deployer.rotation.operations import (
    Bake,
    BuildImage,
    Commit,
    Drain,
    Operation,
    ReuseImage,
    from_dict,
)
from deployer.rotation.outcomes import Done
from deployer.rotation.results import Baked, Committed, ImageReady
from deployer.rotation.step import Step, StepResult


def record_done(step: Step, op: Operation, outcome: Done, plan: list[Operation]) -> None:
    """Record a finished operation; after commit and bake, the request's status and history
    say where it stands (baking, draining; succeeded, rolled back or removed)."""
    status = StageStatus.SKIPPED if outcome.skipped else StageStatus.DONE
    changes: dict[str, Any] = {}
    if outcome.replan is not None:
        changes["plan"] = tuple(o.to_dict() for o in plan)
    baking = any(isinstance(o, Bake) for o in plan)
    drains = any(isinstance(o, Drain) for o in plan)
    if isinstance(op, Commit):
        changes["status"] = RunStatus.BAKING if baking else (
            RunStatus.DRAINING if drains else RunStatus.RUNNING)
    elif isinstance(op, Bake):
        changes["status"] = RunStatus.DRAINING if drains else RunStatus.RUNNING
    step.t.finish(op.key, codec.to_data(outcome.result), status, changes)
    if isinstance(op, Commit) and not baking:
        append_history(step, RunStatus.SUCCEEDED, None)
        promote_onwards(step)
    elif isinstance(op, Bake):
        _baked(step, outcome.result)


def promote_onwards(step: Step) -> None:
    """The revision is proven here (live, its bake window passed if it had one): environments
    that promote from this one on their own (``DEPLOYER_AUTO_PROMOTE_FROM``) get a promotion of
    it, subject to their own approval. One that cannot be made is noted, never a failure here."""
    from deployer.errors import DeployerError
    from deployer.models import RequestKind
    from deployer.request_queue import new_record, submit
    from deployer.revisions.promotion import promotion_request

    s = step.s
    if step.request.kind not in (RequestKind.DEPLOY, RequestKind.REDEPLOY, RequestKind.PROMOTE):
        return  # a rollback here is never carried onwards on its own
    for name in s.settings.environments:
        if name == s.settings.environment:
            continue
        target = s.in_environment(name)
        if target.settings.auto_promote_from != s.settings.environment:
            continue
        try:
            request = promotion_request(s, target, step.request.module, trigger_source="auto-promote",
                                        key=step.request.request_id)
            record = submit(target, new_record(request))
        except DeployerError as exc:
            step.t.progress.note(f"automatic promotion to {name} not made: {exc.message}")
            notices.tell(s, Notice("promotion.failed", "warning", f"{step.request.module}: not "
                                   f"promoted to {name}", f"the automatic promotion of revision "
                                   f"{step.request.revision.id} from {s.settings.environment_name} "
                                   f"to {name} was not made: {exc.message}\n(`deployer promote "
                                   f"{step.request.module} --to {name}` makes it)",
                                   step.request.module))
            continue
        step.t.progress.note(f"promoted to {name} on its own (request {record.request_id[:8]}, "
                             f"{record.status.value})")


def _baked(step: Step, baked: Any) -> None:
    assert isinstance(baked, Baked)
    if baked.removed:
        append_history(step, RunStatus.REMOVED, {
            "code": "removed", "message": f"module {step.request.module} was removed "
            f"(request {baked.by}) while revision {step.request.revision.id} was baking"})
        step.t.progress.note(f"the module was removed by request {baked.by}: the bake ends")
    elif baked.rolled_back:
        append_history(step, RunStatus.ROLLED_BACK, {
            "code": "rolled_back", "message": baked.reason, "runs": list(baked.runs)})
        step.t.progress.note(f"rolled back: {baked.reason}")
    else:
        append_history(step, RunStatus.SUCCEEDED, None)
        promote_onwards(step)


def finish(step: Step, plan: list[Operation]) -> StepResult:
    """Every operation done: the request ends as its commit and bake window made it."""
    committed = any(isinstance(op, Commit) for op in plan)
    baked = result_of(step.t, plan, Bake, Baked)
    status = RunStatus.ROLLED_BACK if baked and baked.rolled_back else RunStatus.REMOVED \
        if baked and baked.removed else (RunStatus.SUCCEEDED if committed else RunStatus.NOOP)
    return step.end(status, step.record.error)


def append_history(step: Step, outcome: RunStatus, error: dict[str, Any] | None, *,
                   superseded_by: str = "") -> None:
    """The request's outcome in the module's history (once), and told to whoever listens."""
    state, request = step.s.state, step.request
    if any(e.request_id == request.request_id for e in state.history(request.module)):
        return
    timings = {s.name: round(s.seconds, 3) for s in step.record.stages if s.seconds is not None}
    revision = request.revision
    plan = [from_dict(d) for d in step.record.plan]
    image = result_of(step.t, plan, BuildImage, ImageReady) or result_of(step.t, plan, ReuseImage, ImageReady)
    if image is not None:
        revision = replace(revision, image=image.image.ref, image_digest=image.image.digest)
    committed = result_of(step.t, plan, Commit, Committed)
    if not revision.image and committed is not None and committed.serving is not None:
        # a code-only revision: it runs in the image it was committed with (the module may
        # serve a newer revision by now: a deploy that ended this one's bake)
        revision = replace(revision, image=committed.serving.image,
                           image_digest=committed.serving.image_digest)
    if not revision.image:  # committed before the commit recorded it
        got = state.module(request.module)
        current = got.value.current if got else None
        if current is not None and current.id == revision.id:
            revision = replace(revision, image=current.image, image_digest=current.image_digest)
    planned = step.t.begun(RequestStage.PLAN)
    state.append_history(HistoryEntry(
        module=request.module, revision=revision, request_id=request.request_id,
        kind=request.kind, trigger=request.trigger, outcome=outcome, at=step.s.now(),
        stages=timings, error=error, changed=tuple(planned.get("changed", ())),
        path=str(planned.get("path", "")), live_after=live_after(step.record)))
    told = notices.tell(step.s, notices.outcome_notice(
        replace(step.record, superseded_by=superseded_by or step.record.superseded_by),
        outcome, error, step.s.now(), notices.links(step.s)))
    if told is not None:
        step.t.update(notices=(*step.record.notices, told))



def live_after(record: RunRecord) -> float | None:
    """Seconds from the request to its commit: when its revision went live (None: it did not)."""
    commit = record.stage(Commit.kind)
    if commit is None or commit.finished_at is None:
        return None
    return round((commit.finished_at - record.created_at).total_seconds(), 3)
