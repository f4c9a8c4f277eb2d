"""The failure policy: what a failed request leaves behind depends on its phase.

Before cutover nothing points at the new agent: it is removed and the old one keeps serving.
During cutover the deployments may point at either: they are handed back to the serving agent
(``handback``), and if that fails too both agents are kept. After the commit the new revision
serves: the request succeeded, and what failed (retiring an old agent) is noted for the nightly
cleanup. A revision refused before anything started is a rejection.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from deployer.errors import DeployerError, RevisionRefused
from deployer.models import RequestStage, RunStatus, StageStatus
from deployer.rotation.ending import append_history
from deployer.rotation.handback import hand_back
from deployer.rotation.operations import (
    CheckInContainer,
    Commit,
    HoldQueue,
    Phase,
    Register,
    StartAgent,
    from_dict,
)
from deployer.rotation.step import Step, StepResult
from deployer.urls import mask_text

logger = logging.getLogger(__name__)


def brief(exc: BaseException) -> str:
    """The first line of an unexpected exception, for a record (no credential a URL carries)."""
    return mask_text((str(exc) or type(exc).__name__).splitlines()[0])[:300]


def fail(step: Step, exc: BaseException) -> StepResult:
    error = exc.to_dict() if isinstance(exc, DeployerError) else {
        "code": "internal_error", "message": f"{type(exc).__name__}: {brief(exc)}"}
    logger.error("step.failed request=%s code=%s", step.request.request_id, error["code"])
    if isinstance(exc, RevisionRefused):  # nothing was attempted
        step.t.finish(RequestStage.PLAN, {"refused": True}, StageStatus.FAILED)
        append_history(step, RunStatus.REJECTED, error)
        return step.end(RunStatus.REJECTED, error)
    phase = phase_of(step)
    if phase is Phase.RETIRE:
        return _fail_retiring(step, error)
    if phase is Phase.CUTOVER and not _revert(step):
        step.t.progress.note("cutover was interrupted and could not be undone: both agents are "
                             "kept, since deployments may point at either; deploy again or roll "
                             "back")
    else:  # before cutover, or cutover undone: the new agent goes, the old one serves
        _remove_new_agent(step)
    _fail_running_stages(step, error)
    append_history(step, RunStatus.FAILED, error)
    return step.end(RunStatus.FAILED, error)


def _fail_running_stages(step: Step, error: dict[str, Any]) -> None:
    for stage in step.record.stages:
        if stage.status is StageStatus.RUNNING:
            step.t.finish(stage.name, {"error": error["message"]}, StageStatus.FAILED)


def _fail_retiring(step: Step, error: dict[str, Any]) -> StepResult:
    """The new revision serves already; what failed is retiring an old agent. The request
    succeeded; the failure is noted, and the nightly cleanup retires what is left."""
    _fail_running_stages(step, error)
    note = {**error, "message": f"deployed, but retiring an old agent failed: {error['message']} "
            "(the nightly cleanup retires it)"}
    return step.end(RunStatus.SUCCEEDED, note)


def phase_of(step: Step) -> Phase:
    plan = [from_dict(d) for d in step.record.plan]
    if any(isinstance(op, Commit) and step.t.done(op.key) is not None for op in plan):
        return Phase.RETIRE
    if any(op.phase is Phase.CUTOVER and step.record.stage(op.key) is not None for op in plan):
        return Phase.CUTOVER
    return Phase.PREPARE


def _revert(step: Step) -> bool:
    """During cutover (after the deployments were re-pointed, before commit): hand them back to
    the agent that serves (``handback``). False when that failed too."""
    module = step.request.module
    new = next((op.queue for op in (from_dict(d) for d in step.record.plan)
                if isinstance(op, Register)), "")
    got = step.s.state.module(module)
    doc = got.value if got else None
    previous = doc.current if doc else None
    previous_queue = doc.serving_queue if doc else ""
    try:
        for op in (from_dict(d) for d in step.record.plan):
            if isinstance(op, HoldQueue) and step.record.stage(op.key) is not None:
                step.s.orchestrator.resume_queue(module, op.queue)
        handed = hand_back(step.s, module, previous=previous, previous_queue=previous_queue,
                           new_queue=new)
    except DeployerError as exc:
        logger.warning("step.revert_failed request=%s error=%s", step.request.request_id,
                       exc.message)
        return False
    step.t.update(stages=tuple(
        replace(st, detail={**st.detail, "reverted": handed}) if st.name == Register.kind else st
        for st in step.record.stages))
    step.t.progress.note("cutover undone: the deployments point at the serving agent again")
    return True


def _remove_new_agent(step: Step) -> None:
    """Before cutover: remove the new agent (if it was started); the old one keeps serving."""
    check = step.t.begun(CheckInContainer.kind).get("container")
    if check:  # a check in a container (``isolation: run``) that did not finish
        try:
            step.s.runtime.stop(check)
        except DeployerError as exc:  # cleanup removes it later
            logger.warning("step.rollback_failed container=%s error=%s", check, exc.message)
    name = step.t.begun(StartAgent.kind).get("agent")
    if not name:
        return
    try:
        step.s.runtime.stop(name)
        step.s.orchestrator.delete_queue(step.request.module, name)
        step.t.progress.note(f"rolled back: agent {name} removed, the old agent keeps serving")
    except DeployerError as exc:  # cleanup retires it later; never mask the real failure
        logger.warning("step.rollback_failed agent=%s error=%s", name, exc.message)
