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
from typing import Any

from deployer.models import (
    PER_RUN_QUEUE,
    DrainingAgent,
    Intent,
    RefusedRevision,
    Request,
    RequestKind,
    Trigger,
)
from deployer.ports.agents import AgentState
from deployer.ports.orchestrator import RunRef
from deployer.request_queue import new_record, submit
from deployer.rotation.context import Context
from deployer.rotation.handback import hand_back
from deployer.rotation.handlers.registry import handles
from deployer.rotation.looks import BAKE
from deployer.rotation.operations import Bake, Commit, Drain, StopAgent
from deployer.rotation.outcomes import Done, Outcome, Wait
from deployer.rotation.results import Baked, Committed

logger = logging.getLogger(__name__)
BAD = ("FAILED", "CRASHED")
#: how far back the previous revision's runs are looked at for its failure ratio
PREVIOUS_LOOKBACK = timedelta(days=7)


@handles(Bake)
def bake(ctx: Context, op: Bake, looks: int) -> Outcome:
    s, module, settings = ctx.s, ctx.module, ctx.s.settings
    commit = ctx.t.record.stage(Commit.kind)
    committed = ctx.result(Commit, Committed)
    assert commit is not None and commit.finished_at is not None and committed is not None
    since = commit.finished_at
    got = s.state.module(module)
    doc = got.value if got else None
    if doc is not None and doc.removed is not None and doc.removed.at >= since:
        # ``deployer remove`` stopped its agents: nothing is left to watch, drain or stop
        return Done(Baked("removed", by=doc.removed.request_id), replan=())
    if doc is None or got is None or doc.request_id != ctx.request.request_id:
        return Done(Baked("superseded", by=doc.request_id if doc else ""))
    previous_queue = _previous_queue(committed)
    previous_ratio = ctx.t.begun(op.key).get("previous_ratio")
    if previous_ratio is None:
        previous_runs = [r for r in s.orchestrator.finished_runs(
            module, previous_queue, since - PREVIOUS_LOOKBACK,
            limit=max(settings.bake_runs * 3, 10)) if r.version != ctx.request.revision.id] \
            if previous_queue else []
        previous_ratio = _ratio(previous_runs)
        ctx.t.checkpoint(op.key, {"previous_ratio": previous_ratio})
    revision = ctx.request.revision.id
    # on a queue the previous revision shared (a code-only change), its runs carry its version
    runs = [r for r in s.orchestrator.finished_runs(module, op.queue, since)
            if r.version in ("", revision)]
    ratio = _ratio(runs)
    evidence = tuple({"id": r.id, "name": r.name, "state": r.state} for r in runs)
    if runs and ratio > settings.bake_failure_ratio and ratio > previous_ratio:
        return _roll_back(ctx, op, committed, evidence, ratio, previous_ratio)
    until = since + timedelta(seconds=settings.bake_seconds)
    if len(runs) >= settings.bake_runs or s.now() >= until:
        s.state.save_module(replace(doc, baking=None, updated_at=s.now()), got.etag)
        return Done(Baked("passed", evidence, ratio, previous_ratio))
    failed = sum(1 for r in runs if r.state in BAD)
    # never slept inside the invocation: the window lasts minutes, and the request is settled
    # (a deploy that drives it, the CLI's, is done once the first look is recorded)
    return Wait(BAKE.pause(looks), f"baking revision {revision}: {len(runs)} of "
                f"{settings.bake_runs} run(s) finished, {failed} failed; the window ends "
                f"{until:%H:%M:%S} UTC", {"runs": list(evidence), "previous_ratio": previous_ratio},
                inline=False)


def _previous_queue(committed: Committed) -> str:
    """Where the previous revision's runs went: its agent's queue, or the per-run queue."""
    if committed.previous_agent is not None:
        return committed.previous_agent.queue
    previous = committed.previous
    return PER_RUN_QUEUE if previous is not None and previous.per_run else ""


def _ratio(runs: list[RunRef]) -> float:
    return sum(1 for r in runs if r.state in BAD) / len(runs) if runs else 0.0


def _roll_back(ctx: Context, op: Bake, committed: Committed, evidence: tuple[dict[str, Any], ...],
               ratio: float, previous_ratio: float) -> Outcome:
    s, module, request = ctx.s, ctx.module, ctx.request
    previous, previous_agent = committed.previous, committed.previous_agent
    now = s.now()
    failed = sum(1 for r in evidence if r["state"] in BAD)
    reason = (f"{failed} of {len(evidence)} run(s) failed or crashed in the bake window "
              f"({ratio:.0%}, above {s.settings.bake_failure_ratio:.0%} and the previous "
              f"revision's {previous_ratio:.0%})")
    revision = request.revision
    image = ctx.image()
    refused = RefusedRevision(revision.id, revision.code_digest, revision.config_digest,
                              image.digest, now, request.request_id, reason)
    logger.warning("bake.rolling_back module=%s revision=%s %s", module, revision.id, reason)
    # a previous revision whose runs each got a container needs no agent to be alive
    alive = previous is not None and (previous.per_run or (previous_agent is not None and (
        (info := s.runtime.get(previous_agent.name)) is not None and info.state is AgentState.RUNNING)))
    got = s.state.module(module)
    assert got is not None
    doc = got.value
    outcome = Baked("rolled_back", evidence, ratio, previous_ratio, reason,
                    to=previous.id if previous else "")
    if alive and previous is not None:
        handed = hand_back(s, module, previous=previous, previous_queue=_previous_queue(committed),
                           new_queue=op.queue)
        back = previous_agent.name if previous_agent is not None else ""
        # a code-only revision (only its code goes back) or one with no agent: nothing to drain
        keep = not op.agent or op.agent == back
        deadline = now + timedelta(seconds=s.settings.drain_timeout_seconds)
        others = tuple(d for d in doc.draining if d.name != back)
        draining = others if keep else (*others, DrainingAgent(
            op.agent, op.queue, revision.id, request.request_id, now, deadline))
        s.state.save_module(replace(
            doc, current=previous,
            agent=replace(previous_agent, started_at=now) if previous_agent is not None else None,
            request_id=request.request_id, draining=draining, baking=None,
            refused=(*doc.refused, refused), updated_at=now), got.etag)
        return Done(replace(outcome, serving=back or "a container per run", handback=handed),
                    replan=() if keep else (Drain(op.agent, op.queue),
                                            StopAgent(op.agent, op.queue)))
    # the previous agent is gone: a rollback request rotates back to its revision (no build)
    s.state.save_module(replace(doc, baking=None, refused=(*doc.refused, refused), updated_at=now),
                        got.etag)
    if previous is None:
        return Done(replace(outcome, note="no previous revision to go back to"))
    rollback = Request(Request.make_id("auto-rollback", request.request_id), RequestKind.ROLLBACK,
                       module, Trigger("auto-rollback", request.request_id,
                                       {"from": revision.id, "to": previous.id}),
                       previous, now, Intent(now, f"auto-rollback:{request.request_id}"))
    submit(s, new_record(rollback))
    return Done(replace(outcome, rollback_request=rollback.request_id))
