"""Admission and plan: a request's first steps. Admission says whether it may rotate its module
now (it owns it), must wait for the owner, or is superseded by a newer intent (a removal among
them); an admitted request is planned once (``plan.plan_rotation`` on inputs gathered by
``inputs.gather``), and the plan is kept in its run record."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from deployer.errors import BundleInvalid, DeployerError, RevisionRefused
from deployer.models import RequestKind, RequestStage, RunStatus
from deployer.revisions.source import RevisionSource
from deployer.rotation import admission
from deployer.rotation.ending import append_history
from deployer.rotation.inputs import gather
from deployer.rotation.looks import ADMISSION
from deployer.rotation.plan import plan_rotation
from deployer.rotation.step import Step, StepResult

WAIT, PLAN = RequestStage.WAIT, RequestStage.PLAN


def admit(step: Step, source: RevisionSource) -> StepResult | None:
    """None: admitted and planned, go on; else the step's result (superseded, or waiting)."""
    looked = step.s.now()  # before admission reads the pending list
    record, t = step.record, step.t
    verdict = admission.admit(step.s, record)
    if isinstance(verdict, admission.Superseded):
        if record.stage(WAIT) is not None:
            t.finish(WAIT, {"superseded_by": verdict.by})
        error = removed_since(step, verdict.by) if verdict.removal else None
        t.progress.note(error["message"] if error else f"superseded by the newer request {verdict.by}")
        append_history(step, RunStatus.SUPERSEDED, error, superseded_by=verdict.by)
        return step.end(RunStatus.SUPERSEDED, error, superseded_by=verdict.by)
    if isinstance(verdict, admission.MustWait):
        owner = verdict.owner.request_id
        looks = int(t.begun(WAIT).get("looks", 0))
        if record.stage(WAIT) is None:
            t.start(WAIT, {"owner": owner})
        module = step.request.module
        t.progress.note(f"module {module} is busy with request {owner}: waiting for it")
        return step.continue_later(ADMISSION.pause(looks), f"module {module} is busy with request "
                                   f"{owner}", owner, status=RunStatus.WAITING, stage=WAIT,
                                   looks=looks + 1)
    if record.stage(WAIT) is not None and t.done(WAIT) is None:
        t.finish(WAIT)
    make_plan(step, source, admitted=looked)
    return None


def removed_since(step: Step, removal: str) -> dict[str, Any]:
    """The error of a request the module's removal superseded."""
    module = step.request.module
    got = step.s.state.module(module)
    removed = got.value.removed if got else None
    when = f" at {removed.at:%Y-%m-%d %H:%M:%S} UTC" if removed else ""
    return {"code": "superseded_by_removal", "message": (
        f"module {module} was removed{when} (request {removal}), after this request was made: "
        "it does not bring the module back"),
        "hint": f"to deploy {module} again, upload it again or `deployer deploy flows/{module}`"}


def make_plan(step: Step, source: RevisionSource, admitted: datetime | None = None) -> None:
    s, t = step.s, step.t
    t.start(PLAN)
    if step.request.kind is RequestKind.REDEPLOY:
        refresh_configuration(step, source)
    refusal = refused(step)
    if refusal is not None:
        raise refusal
    module = source.module
    conflicts = s.orchestrator.conflicts(step.request.module, module.deployments)
    if conflicts:  # refused before anything starts, not at cutover
        raise BundleInvalid(conflicts, source=f"module {step.request.module}")
    inputs = gather(s, step.request, module)
    plan = plan_rotation(inputs)
    t.finish(PLAN, {"noop": plan.noop, "reason": plan.reason, "path": plan.path,
                    "changed": list(plan.changed), "why": inputs.parts_why,
                    "new_agent": plan.new_agent, "steps": plan.steps(),
                    "files": len(module.tree.files),
                    "admitted_at": admitted.isoformat() if admitted else ""},
             changes={"status": RunStatus.RUNNING, "plan": plan.to_data(), "waiting": None})
    t.progress.note(f"plan: {plan.reason}")


def refused(step: Step) -> DeployerError | None:
    """A revision rolled back on its own comes back only when asked for explicitly (a
    rollback, or ``deployer deploy``), never through a push or a re-upload."""
    request = step.request
    got = step.s.state.module(request.module)
    refusal = got.value.refusal(request.revision) if got else None
    explicit = request.kind in (RequestKind.ROLLBACK, RequestKind.PROMOTE) \
        or request.trigger.detail.get("explicit") == "true"
    if refusal is None or explicit:
        return None
    return RevisionRefused(
        f"revision {refusal.revision_id} of {request.module} was rolled back on its own "
        f"at {refusal.at:%Y-%m-%d %H:%M} UTC by request {refusal.request_id}: {refusal.reason}; "
        "a push or a re-upload of it does not bring it back",
        hint=f"to deploy it anyway, ask explicitly: `deployer deploy flows/{request.module}` "
        f"or `deployer rollback {request.module} --to {refusal.revision_id}`")


def refresh_configuration(step: Step, source: RevisionSource) -> None:
    """A pushed image runs with the module's configuration as it is now (the newest bundle
    that became current), not as it was when the push arrived."""
    got = step.s.state.module(step.request.module)
    current = got.value.current if got else None
    revision = step.request.revision
    if current is None or (current.config_digest, current.bundle) == \
            (revision.config_digest, revision.bundle):
        return
    revision = replace(revision, config_digest=current.config_digest, bundle=current.bundle)
    step.request = replace(step.request, revision=revision)
    source.retarget(step.request)
    step.t.update(revision=revision)
