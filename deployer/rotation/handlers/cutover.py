"""Cutover: the deployments re-pointed at the new revision and proven READY (and by a smoke run
when declared), the old agents' queues held, then the commit that makes the revision current and
frees the module for its next request. A failure before the commit hands the deployments back to
the serving agent (``failure``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from deployer.bundle.deployment_config import smoke_of
from deployer.errors import HealthCheckFailed
from deployer.models import AgentRef, Baking, DrainingAgent, ModuleState
from deployer.ports.orchestrator import SMOKE_TAG
from deployer.rotation import admission
from deployer.rotation.context import Context
from deployer.rotation.handlers.registry import handles
from deployer.rotation.looks import SMOKE, Backoff
from deployer.rotation.operations import (
    AwaitReady,
    Bake,
    Commit,
    Drain,
    HoldQueue,
    Register,
    SmokeRun,
    StartAgent,
)
from deployer.rotation.outcomes import Done, Outcome, Wait
from deployer.rotation.results import Committed, Held, Ready, Registered, SmokeDone


@handles(Register)
def register(ctx: Context, op: Register, looks: int) -> Outcome:
    module = ctx.source.module
    # a run-per-container revision: its runs' job variables name the image they start from
    image = ctx.image().ref if ctx.request.revision.per_run else ""
    removed = ctx.s.orchestrator.register(ctx.pool, op.queue, module.deployments,
                                          ctx.pull_steps(), ctx.request.revision.id, image)
    return Done(Registered(tuple(d.name for d in module.deployments), tuple(removed)))


@handles(AwaitReady)
def wait_ready(ctx: Context, op: AwaitReady, looks: int) -> Outcome:
    specs = [d for d in ctx.source.module.deployments if d.name in op.deployments]
    readiness = ctx.s.orchestrator.readiness(ctx.pool, op.queue, specs)
    if readiness.ready:
        return Done(Ready(readiness.queue, dict(readiness.deployments)))
    timeout = ctx.s.settings.health_timeout_seconds
    if ctx.since(op) >= timedelta(seconds=timeout):
        states = ", ".join(f"{n} {s}" for n, s in readiness.deployments.items())
        raise HealthCheckFailed(f"Prefect did not report queue {op.queue} and its deployments "
                                f"READY within {timeout}s (queue {readiness.queue}; {states})",
                                hint="the worker must poll its queue; its log tail shows why "
                                "not. The old agent serves again")
    pace = Backoff(0.5, 1.5, max(float(ctx.s.settings.worker_poll_seconds), 1.0))
    return Wait(pace.pause(looks), f"Prefect to report queue {op.queue} READY "
                f"(now {readiness.queue})")


@handles(SmokeRun)
def smoke_run(ctx: Context, op: SmokeRun, looks: int) -> Outcome:
    orchestrator = ctx.s.orchestrator
    spec = next(d for d in ctx.source.module.deployments if d.name == op.deployment)
    smoke = smoke_of(spec) or {"parameters": {}, "timeout_seconds": 600}
    run_id = ctx.t.begun(op.key).get("run_id")
    if not run_id:
        started = orchestrator.start_run(
            op.flow, op.deployment, smoke["parameters"], tags=[SMOKE_TAG],
            idempotency_key=f"smoke:{ctx.request.request_id}:{op.deployment}")
        run_id = started.id
        ctx.t.checkpoint(op.key, {"run_id": run_id, "run_name": started.name})
    run = orchestrator.run_status(run_id)
    if run.state == "COMPLETED":
        return Done(SmokeDone(run_id, run.state))
    if run.state in ("FAILED", "CRASHED", "CANCELLED"):
        raise HealthCheckFailed(f"the smoke run {run.name} ({run_id}) of deployment "
                                f"{op.flow}/{op.deployment} ended {run.state}",
                                hint="its logs are in Prefect; the old agent serves again")
    timeout = int(smoke["timeout_seconds"])
    if ctx.since(op) >= timedelta(seconds=timeout):
        raise HealthCheckFailed(f"the smoke run {run.name} ({run_id}) of deployment "
                                f"{op.flow}/{op.deployment} did not finish within {timeout}s "
                                "(deployer.smoke.timeout_seconds)")
    return Wait(SMOKE.pause(looks), f"smoke run {run.name} of {op.deployment}: {run.state}")


@handles(HoldQueue)
def hold_queue(ctx: Context, op: HoldQueue, looks: int) -> Outcome:
    ctx.s.orchestrator.pause_queue(ctx.pool, op.queue)
    moved = ctx.s.orchestrator.rehome_scheduled(ctx.pool, op.queue, op.to_queue)
    return Done(Held(tuple(moved)))


@handles(Commit)
def commit(ctx: Context, op: Commit, looks: int) -> Outcome:
    state, now, settings = ctx.s.state, ctx.s.now(), ctx.s.settings
    got = state.module(ctx.module)
    doc = got.value if got else ModuleState(ctx.module, updated_at=now)
    image = ctx.image()
    serving = replace(ctx.request.revision, image=image.ref, image_digest=image.digest,
                      code_store=ctx.pulls_code())
    queues = {d.agent: d.queue for d in ctx.plan if isinstance(d, Drain)}
    deadline = now + timedelta(seconds=settings.drain_timeout_seconds)
    olds = {d.name: d for d in doc.draining}
    for name in op.draining:
        if name not in olds:
            revision = doc.agent.revision_id if doc.agent and doc.agent.name == name else ""
            olds[name] = DrainingAgent(name, queues.get(name, name), revision,
                                       ctx.request.request_id, now, deadline)
    owner = doc.owner if doc.owner and doc.owner.request_id != ctx.request.request_id else None
    bake = next((b for b in ctx.plan if isinstance(b, Bake)), None)
    baking = Baking(ctx.request.request_id, op.revision_id, now,
                    now + timedelta(seconds=settings.bake_seconds), settings.bake_runs,
                    bake.previous) if bake is not None else None
    started = any(isinstance(o, StartAgent) and o.agent == op.agent for o in ctx.plan)
    checks = ctx.pulls_code() if started else bool(doc.agent and doc.agent.name == op.agent
                                                    and doc.agent.checks)
    # no agent when each run gets a container of its own (``isolation: run``)
    agent = AgentRef(op.agent, op.revision_id, op.agent, now, checks) if op.agent else None
    committed = replace(doc, current=serving, agent=agent,
                        request_id=ctx.request.request_id, updated_at=now, owner=owner,
                        draining=tuple(olds.values()), baking=baking, removed=None,
                        refused=tuple(r for r in doc.refused if doc.refusal(serving) is not r))
    state.save_module(committed, got.etag if got else None)
    state.remove_pending(ctx.module, ctx.request.request_id)  # no longer competing
    woken = admission.wake(ctx.s, ctx.module, ctx.request.request_id)
    return Done(Committed(op.revision_id, op.agent, op.draining, woken, doc.current, doc.agent,
                          serving))
