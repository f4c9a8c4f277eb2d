"""The bake window: after a cutover, the new revision's runs are watched while the previous
agent stays ready (its queue paused, its process running). If the new runs fail or crash more
often than ``DEPLOYER_BAKE_FAILURE_RATIO`` and more often than the previous revision's did, the
deployments go back to the previous agent at once (no build, no agent start), the bad revision
is marked so that a push or a re-upload does not bring it back silently, and its agent drains
(a run of it in flight is left to finish, and reported). The window ends when
``DEPLOYER_BAKE_RUNS`` runs have finished or ``DEPLOYER_BAKE_SECONDS`` have passed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from deployer import codec
from deployer.models import (
    AgentRef,
    DrainingAgent,
    Intent,
    RefusedRevision,
    Request,
    RequestKind,
    Revision,
    Trigger,
)
from deployer.ports.agents import AgentState
from deployer.ports.orchestrator import RunRef
from deployer.request_queue import new_record, submit
from deployer.rotation.handback import hand_back
from deployer.rotation.looks import BAKE
from deployer.rotation.operations import Bake, Drain, StopAgent
from deployer.rotation.outcomes import Done, Outcome, Wait

if TYPE_CHECKING:
    from deployer.rotation.execute import Executor

logger = logging.getLogger(__name__)
BAD = ("FAILED", "CRASHED")
#: how far back the previous revision's runs are looked at for its failure ratio
PREVIOUS_LOOKBACK = timedelta(days=7)


def look(ex: Executor, op: Bake, looks: int) -> Outcome:
    s, t, module = ex.s, ex.t, ex.module
    settings = s.settings
    commit = t.record.stage("commit")
    detail = t.done("commit") or {}
    assert commit is not None and commit.finished_at is not None
    since = commit.finished_at
    got = s.state.module(module)
    doc = got.value if got else None
    if doc is not None and doc.removed is not None and doc.removed.at >= since:
        # ``deployer remove`` stopped its agents: nothing is left to watch, drain or stop
        return Done({"outcome": "removed", "by": doc.removed.request_id}, replan=())
    if doc is None or doc.request_id != ex.request.request_id:
        return Done({"outcome": "superseded", "by": doc.request_id if doc else ""})
    begun = t.begun(op.key)
    previous_agent = codec.loads_data(AgentRef, detail.get("previous_agent"))
    previous_ratio = begun.get("previous_ratio")
    if previous_ratio is None:
        previous_runs = [r for r in s.orchestrator.finished_runs(
            module, previous_agent.queue, since - PREVIOUS_LOOKBACK,
            limit=max(settings.bake_runs * 3, 10)) if r.version != ex.request.revision.id] \
            if previous_agent else []
        previous_ratio = _ratio(previous_runs)
        t.checkpoint(op.key, {"previous_ratio": previous_ratio})
    revision = ex.request.revision.id
    # on a queue the previous revision shared (a code-only change), its runs carry its version
    runs = [r for r in s.orchestrator.finished_runs(module, op.queue, since)
            if r.version in ("", revision)]
    ratio = _ratio(runs)
    evidence = [{"id": r.id, "name": r.name, "state": r.state} for r in runs]
    if runs and ratio > settings.bake_failure_ratio and ratio > previous_ratio:
        return _roll_back(ex, op, evidence, ratio, previous_ratio)
    until = since + timedelta(seconds=settings.bake_seconds)
    if len(runs) >= settings.bake_runs or s.now() >= until:
        s.state.save_module(replace(doc, baking=None, updated_at=s.now()), got.etag)  # type: ignore[union-attr]
        return Done({"outcome": "passed", "runs": evidence, "ratio": ratio,
                     "previous_ratio": previous_ratio})
    failed = sum(1 for r in runs if r.state in BAD)
    return Wait(BAKE.pause(looks), f"baking revision {ex.request.revision.id}: {len(runs)} of "
                f"{settings.bake_runs} run(s) finished, {failed} failed; the window ends "
                f"{until:%H:%M:%S} UTC", {"runs": evidence, "previous_ratio": previous_ratio})


def _ratio(runs: list[RunRef]) -> float:
    return sum(1 for r in runs if r.state in BAD) / len(runs) if runs else 0.0


def _roll_back(ex: Executor, op: Bake, evidence: list[dict[str, Any]], ratio: float,
               previous_ratio: float) -> Outcome:
    s, module, request = ex.s, ex.module, ex.request
    detail = ex.t.done("commit") or {}
    previous = codec.loads_data(Revision, detail.get("previous"))
    previous_agent = codec.loads_data(AgentRef, detail.get("previous_agent"))
    now = s.now()
    failed = sum(1 for r in evidence if r["state"] in BAD)
    reason = (f"{failed} of {len(evidence)} run(s) failed or crashed in the bake window "
              f"({ratio:.0%}, above {s.settings.bake_failure_ratio:.0%} and the previous "
              f"revision's {previous_ratio:.0%})")
    revision = request.revision
    image = ex.image()
    refused = RefusedRevision(revision.id, revision.code_digest, revision.config_digest,
                              image.digest, now, request.request_id, reason)
    logger.warning("bake.rolling_back module=%s revision=%s %s", module, revision.id, reason)
    alive = previous_agent is not None and previous is not None and (
        (info := s.runtime.get(previous_agent.name)) is not None and info.state is AgentState.RUNNING)
    got = s.state.module(module)
    assert got is not None
    doc = got.value
    outcome = {"outcome": "rolled_back", "runs": evidence, "ratio": ratio,
               "previous_ratio": previous_ratio, "reason": reason,
               "to": previous.id if previous else ""}
    if alive and previous is not None and previous_agent is not None:
        handed = hand_back(s, module, previous=previous, previous_queue=previous_agent.queue,
                           new_queue=op.queue)
        same_agent = op.agent == previous_agent.name  # a code-only revision: only its code goes
        deadline = now + timedelta(seconds=s.settings.drain_timeout_seconds)
        draining = tuple(d for d in doc.draining if d.name != previous_agent.name) if same_agent \
            else (*(d for d in doc.draining if d.name != previous_agent.name),
                  DrainingAgent(op.agent, op.queue, revision.id, request.request_id, now, deadline))
        s.state.save_module(replace(
            doc, current=previous, agent=replace(previous_agent, started_at=now),
            request_id=request.request_id, draining=draining, baking=None,
            refused=(*doc.refused, refused), updated_at=now), got.etag)
        return Done({**outcome, **handed, "serving": previous_agent.name},
                    replan=() if same_agent else (Drain(op.agent, op.queue),
                                                  StopAgent(op.agent, op.queue)))
    # the previous agent is gone: a rollback request rotates back to its revision (no build)
    s.state.save_module(replace(doc, baking=None, refused=(*doc.refused, refused), updated_at=now),
                        got.etag)
    if previous is None:
        return Done({**outcome, "note": "no previous revision to go back to"})
    rollback = Request(Request.make_id("auto-rollback", request.request_id), RequestKind.ROLLBACK,
                       module, Trigger("auto-rollback", request.request_id,
                                       {"from": revision.id, "to": previous.id}),
                       previous, now, Intent(now, f"auto-rollback:{request.request_id}"))
    submit(s, new_record(rollback))
    return Done({**outcome, "rollback_request": rollback.request_id})
