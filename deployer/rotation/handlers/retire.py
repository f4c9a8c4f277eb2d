"""After cutover: the old agents finish their runs (never killed before the drain deadline), then
stop. The new revision serves already: a failure here is noted, and the nightly cleanup retires
what is left (``failure``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from deployer.ports.agents import AgentState
from deployer.rotation.context import Context
from deployer.rotation.handlers.registry import handles
from deployer.rotation.looks import DRAIN
from deployer.rotation.operations import Drain, StopAgent
from deployer.rotation.outcomes import Done, Outcome, Wait
from deployer.rotation.results import Drained, Stopped


@handles(Drain)
def drain(ctx: Context, op: Drain, looks: int) -> Outcome:
    runs = ctx.s.orchestrator.in_flight(ctx.pool, op.queue)
    if not runs:
        return Done(Drained())
    info = ctx.s.runtime.get(op.agent)
    ids = tuple(r.id for r in runs)
    revision = ctx.request.revision.id
    if info is None or info.state is not AgentState.RUNNING:
        crashed = ctx.s.orchestrator.mark_crashed(ids, (
            f"its agent {op.agent} stopped while the run was in flight; it can never finish "
            f"(the deploy of revision {revision} had moved new runs elsewhere)"))
        return Done(Drained(ids, tuple(crashed), reason="agent gone"))
    if ctx.s.now() >= _deadline(ctx, op):
        timeout = ctx.s.settings.drain_timeout_seconds
        crashed = ctx.s.orchestrator.mark_crashed(ids, (
            f"still running on agent {op.agent} at its drain deadline, {timeout}s after the "
            f"deploy of revision {revision} (DEPLOYER_DRAIN_TIMEOUT_SECONDS)"))
        return Done(Drained(ids, tuple(crashed), timed_out=True))
    names = ", ".join(r.name for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
    return Wait(DRAIN.pause(looks), f"{len(runs)} run(s) in flight on old agent {op.agent}: "
                f"{names}", {"in_flight": [{"id": r.id, "name": r.name, "state": r.state}
                                          for r in runs]})


def _deadline(ctx: Context, op: Drain) -> datetime:
    got = ctx.s.state.module(ctx.module)
    for draining in got.value.draining if got else ():
        if draining.name == op.agent:
            return draining.deadline
    stage = ctx.t.record.stage(op.key)
    started = stage.started_at if stage is not None else ctx.s.now()
    return started + timedelta(seconds=ctx.s.settings.drain_timeout_seconds)


@handles(StopAgent)
def stop_agent(ctx: Context, op: StopAgent, looks: int) -> Outcome:
    ctx.s.runtime.stop(op.agent)
    ctx.s.orchestrator.delete_queue(ctx.pool, op.queue)
    got = ctx.s.state.module(ctx.module)
    if got is not None and any(d.name == op.agent for d in got.value.draining):
        ctx.s.state.save_module(replace(got.value, updated_at=ctx.s.now(), draining=tuple(
            d for d in got.value.draining if d.name != op.agent)), got.etag)
    return Done(Stopped(op.agent))
