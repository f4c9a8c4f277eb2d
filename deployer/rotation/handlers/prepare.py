"""Before cutover: the revision's code and image made ready, its agent started and proven (its
flows load, its worker is ONLINE). Nothing points at the new revision yet: a failure here removes
the new agent and the old one keeps serving."""

from __future__ import annotations

import logging
from datetime import timedelta

from deployer import preflight
from deployer.bundle.entrypoint import image_entrypoint
from deployer.bundle.sizing import Size
from deployer.config import Settings
from deployer.errors import BuildFailed, DeployerError, HealthCheckFailed
from deployer.models import PER_RUN_QUEUE
from deployer.ports.agents import AgentSpec, AgentState, Role
from deployer.ports.images import BuildState, Image
from deployer.rotation.context import Context
from deployer.rotation.handlers.registry import handles
from deployer.rotation.looks import (
    BUILD_CAP_SECONDS,
    RUN_START_SECONDS,
    START_CAP_SECONDS,
    Backoff,
    expecting,
)
from deployer.rotation.operations import (
    AwaitOnline,
    BuildImage,
    CheckCode,
    CheckEntrypoints,
    CheckInContainer,
    PublishCode,
    ReuseImage,
    StartAgent,
)
from deployer.rotation.outcomes import Done, Outcome, Wait
from deployer.rotation.results import (
    AgentStarted,
    CodeChecked,
    EntrypointsLoaded,
    ImageReady,
    Online,
    Published,
)

logger = logging.getLogger(__name__)
#: an ACR run may sit in the registry's queue before its own timeout starts counting
BUILD_QUEUE_ALLOWANCE_SECONDS = 600
#: the preflight line is among the first an agent prints; read this much of its log for it
PREFLIGHT_LOG_LINES = 2000


@handles(PublishCode)
def publish_code(ctx: Context, op: PublishCode, looks: int) -> Outcome:
    problems = ctx.s.code.verify(op.module, op.code_digest)
    if not problems:  # stored before, and still exactly that code
        return Done(Published(False), skipped=True)
    damaged = ctx.s.code.exists(op.module, op.code_digest)
    ctx.s.code.publish(op.module, op.code_digest, ctx.source.module.root)
    return Done(Published(True, tuple(problems[:10]) if damaged else ()))


@handles(CheckCode)
def check_code(ctx: Context, op: CheckCode, looks: int) -> Outcome:
    """The proof that the new code loads in the serving agent's environment, before anything
    points at it: asked of the agent's warm checker, or (an agent without one, or a checker that
    does not answer) one run of the deployer's check flow on it."""
    if op.warm and not ctx.t.begun(op.key).get("fallback"):
        return _warm_check(ctx, op, looks)
    return _check_run(ctx, op, looks)


#: the warm checker answers within a second or two; one that has not in this long is taken for
#: gone (an agent whose checker died), and a check run does the proof instead
WARM_ANSWER_SECONDS = 45
#: the deployer's looks at the agent's log for the answer: soon, then at most every second
WARM = Backoff(0.2, 1.3, 1.0)


def _warm_check(ctx: Context, op: CheckCode, looks: int) -> Outcome:
    request = f"check-{ctx.request.request_id}"
    if not ctx.t.begun(op.key).get("asked"):
        entrypoints = [(d.name, d.entrypoint) for d in ctx.source.module.deployments]
        ctx.s.code.ask_check(op.agent, request, ctx.pull_steps(), entrypoints)
        ctx.t.checkpoint(op.key, {"asked": request})
        return Wait(WARM.pause(0), f"agent {op.agent} to load the new code")
    results = preflight.parse_check(ctx.s.runtime.logs(op.agent, tail=PREFLIGHT_LOG_LINES), request)
    if results is not None:
        ctx.s.code.end_check(op.agent, request)
        if any(not r.get("ok") for r in results):
            raise ctx.not_loading(results)
        return Done(CodeChecked(request))
    info = ctx.s.runtime.get(op.agent)
    if info is None or info.state in (AgentState.STOPPED, AgentState.FAILED):
        raise ctx.unhealthy(op.agent, "stopped before it said whether the new code loads")
    if ctx.since(op) >= timedelta(seconds=WARM_ANSWER_SECONDS):
        ctx.s.code.end_check(op.agent, request)
        logger.warning("rotation.warm_check_silent agent=%s request=%s", op.agent, request)
        ctx.t.checkpoint(op.key, {"fallback": True, "looks": 0})
        return _check_run(ctx, op, 0)
    return Wait(WARM.pause(looks), f"agent {op.agent} to load the new code")


def _check_run(ctx: Context, op: CheckCode, looks: int) -> Outcome:
    """One run of the deployer's check flow on the serving agent, pulling the new code."""
    orchestrator = ctx.s.orchestrator
    run_id = ctx.t.begun(op.key).get("run_id")
    if not run_id:
        entrypoints = [(d.name, d.entrypoint) for d in ctx.source.module.deployments]
        started = orchestrator.start_code_check(
            ctx.pool, op.queue, ctx.pull_steps(), entrypoints,
            idempotency_key=f"check:{ctx.request.request_id}")
        run_id = started.id
        ctx.t.checkpoint(op.key, {"run_id": run_id})
        # the run needs the worker's next poll and a process start: wait for that on the
        # queue, not inside this invocation
        return Wait(float(ctx.s.settings.worker_poll_seconds) + RUN_START_SECONDS,
                    f"the check of the new code on agent {op.agent}: started", inline=False)
    run = orchestrator.run_status(run_id)
    if run.state == "COMPLETED":
        orchestrator.finish_code_check(ctx.pool)
        return Done(CodeChecked(run_id))
    if run.state in ("FAILED", "CRASHED", "CANCELLED"):
        orchestrator.finish_code_check(ctx.pool)
        results = preflight.parse(run.message)
        if results:
            raise ctx.not_loading(results)
        raise HealthCheckFailed(preflight.redact(
            f"the check run of the new code on agent {op.agent} ended {run.state}: "
            f"{run.message or 'no message'}", ctx.secrets()),
            hint="the run's logs in Prefect say why; the serving revision is untouched")
    timeout = ctx.s.settings.health_timeout_seconds
    if ctx.since(op) >= timedelta(seconds=timeout):
        raise HealthCheckFailed(f"the check run of the new code on agent {op.agent} did not "
                                f"finish within {timeout}s (DEPLOYER_HEALTH_TIMEOUT_SECONDS)",
                                hint="is the agent's worker polling? `deployer status`")
    pace = Backoff(0.5, 1.5, max(float(ctx.s.settings.worker_poll_seconds), 1.0))
    return Wait(pace.pause(looks), f"the check of the new code on agent {op.agent}: {run.state}")


@handles(BuildImage)
def build(ctx: Context, op: BuildImage, looks: int) -> Outcome:
    builder = ctx.s.builder
    build_id = ctx.t.begun(op.key).get("build_id")
    if not build_id:  # the plan found no image for this code (under this module's ownership)
        build_id = builder.start_build(op.module, op.image_key, ctx.source.module.root)
        ctx.t.checkpoint(op.key, {"build_id": build_id})
        logger.info("rotation.build_started module=%s build=%s", op.module, build_id)
    progress = builder.build_status(op.module, op.image_key, build_id)
    if progress.state is BuildState.SUCCEEDED:
        assert progress.image is not None
        return Done(ImageReady(progress.image, built=True))
    if progress.state is BuildState.FAILED:
        raise BuildFailed(f"the image build of module {op.module} (build {build_id}) failed"
                          + (f": {progress.detail}" if progress.detail else ""),
                          log_tail=progress.log_tail, hint=progress.hint or
                          "fix the module and upload it again; the running agent is untouched")
    limit = ctx.s.settings.build_timeout_seconds + BUILD_QUEUE_ALLOWANCE_SECONDS
    if ctx.since(op) > timedelta(seconds=limit):
        raise BuildFailed(f"the image build of module {op.module} (build {build_id}) is still "
                          f"{progress.detail or 'running'} after {limit}s "
                          "(DEPLOYER_BUILD_TIMEOUT_SECONDS plus the registry's queue)")
    pace = expecting(builder.expected_build_seconds, BUILD_CAP_SECONDS)
    return Wait(pace.pause(looks), f"build {build_id} of {op.module}: "
                f"{progress.detail or 'running'}")


@handles(ReuseImage)
def reuse_image(ctx: Context, op: ReuseImage, looks: int) -> Outcome:
    image = Image(ref=op.ref, working_dir=op.working_dir, digest=op.digest)
    return Done(ImageReady(image, built=False), skipped=True)


@handles(StartAgent)
def start_agent(ctx: Context, op: StartAgent, looks: int) -> Outcome:
    runtime, orchestrator, settings = ctx.s.runtime, ctx.s.orchestrator, ctx.s.settings
    existing = runtime.get(op.agent)
    if existing is not None:
        if existing.state in (AgentState.STOPPED, AgentState.FAILED):
            raise ctx.unhealthy(op.agent, f"stopped before its worker came ONLINE "
                                f"({existing.detail or existing.state.value})")
        return Done(AgentStarted(op.agent, op.queue))  # started by an earlier look
    orchestrator.ensure_pool(ctx.pool)
    orchestrator.ensure_queue(ctx.pool, op.queue)
    secrets, plain = settings.prefect_env()
    plain.update(worker_settings(settings))
    size = ctx.source.module.agent_size(Size(settings.agent_cpu, settings.agent_memory_gb))
    runtime.start(AgentSpec(
        name=op.agent, module=ctx.module, revision_id=op.revision_id, image=ctx.image(),
        pool=ctx.pool, queue=op.queue, env={**ctx.env_values(), **secrets}, settings=plain,
        entrypoints=tuple((d.name, d.entrypoint) for d in ctx.source.module.deployments),
        pull_steps=tuple(ctx.pull_steps()) if ctx.pulls_code() else (),
        entrypoint=image_entrypoint(ctx.dockerfile()),
        # a warm checker proves later code-only revisions on it at once
        checks=ctx.s.code.check_channel(op.agent) if ctx.pulls_code() else {},
        cpu=size.cpu, memory_gb=size.memory_gb))
    return Done(AgentStarted(op.agent, op.queue))


@handles(CheckInContainer)
def check_in_container(ctx: Context, op: CheckInContainer, looks: int) -> Outcome:
    """A container of the revision's image loads its flows (with its ``.env``, as its runs
    will), prints the preflight line and ends; it is removed once read."""
    runtime = ctx.s.runtime
    if not ctx.t.begun(op.key).get("started"):
        ctx.s.orchestrator.ensure_pool(ctx.pool)
        ctx.s.orchestrator.ensure_queue(ctx.pool, PER_RUN_QUEUE)
        secrets, plain = ctx.s.settings.prefect_env()
        runtime.start(AgentSpec(
            name=op.container, module=ctx.module, revision_id=op.revision_id, image=ctx.image(),
            pool=ctx.pool, queue=PER_RUN_QUEUE, env={**ctx.env_values(), **secrets},
            settings=plain, role=Role.CHECK,
            entrypoints=tuple((d.name, d.entrypoint) for d in ctx.source.module.deployments),
            pull_steps=tuple(ctx.pull_steps()) if ctx.pulls_code() else (),
            entrypoint=image_entrypoint(ctx.dockerfile())))
        ctx.t.checkpoint(op.key, {"started": True, "container": op.container})
    try:
        outcome = check_entrypoints(ctx, CheckEntrypoints(op.container, op.deployments), looks,
                                    since=ctx.since(op))
    except DeployerError:
        runtime.stop(op.container)
        raise
    if isinstance(outcome, Done):
        runtime.stop(op.container)
    return outcome


def worker_settings(settings: Settings) -> dict[str, str]:
    """How an agent's worker talks to Prefect while it waits: what an idle module costs in API
    requests (``bench/idle_load.py``). Runs are fetched a poll ahead of their time, so a longer
    poll delays only runs started by hand."""
    return {"PREFECT_WORKER_QUERY_SECONDS": str(settings.worker_poll_seconds),
            "PREFECT_WORKER_PREFETCH_SECONDS": str(settings.worker_poll_seconds + 10),
            "PREFECT_WORKER_HEARTBEAT_SECONDS": str(settings.worker_heartbeat_seconds)}


@handles(CheckEntrypoints)
def check_entrypoints(ctx: Context, op: CheckEntrypoints, looks: int,
                      since: timedelta | None = None) -> Outcome:
    runtime = ctx.s.runtime
    info = runtime.get(op.agent)
    results = preflight.parse(runtime.logs(op.agent, tail=PREFLIGHT_LOG_LINES))
    if results is None:
        if info is None or info.state in (AgentState.STOPPED, AgentState.FAILED):
            raise ctx.unhealthy(op.agent, "stopped before it reported whether its flows "
                                f"load ({info.detail if info else 'gone'})")
        timeout = ctx.s.settings.health_timeout_seconds
        if (ctx.since(op) if since is None else since) >= timedelta(seconds=timeout):
            raise ctx.unhealthy(op.agent, f"did not report within {timeout}s whether its "
                                f"flows load (DEPLOYER_HEALTH_TIMEOUT_SECONDS; it is "
                                f"{info.detail or info.state.value})", hint=_pull_hint(info.detail))
        pace = expecting(runtime.expected_start_seconds, START_CAP_SECONDS)
        return Wait(pace.pause(looks), f"agent {op.agent} to load its flows")
    if any(not r.get("ok") for r in results):
        raise ctx.not_loading(results)
    return Done(EntrypointsLoaded(len(results)))


@handles(AwaitOnline)
def wait_online(ctx: Context, op: AwaitOnline, looks: int) -> Outcome:
    info = ctx.s.runtime.get(op.agent)
    if info is None or info.state in (AgentState.STOPPED, AgentState.FAILED):
        raise ctx.unhealthy(op.agent, "stopped before its worker came ONLINE "
                            f"({info.detail if info else 'gone'})")
    if op.agent in ctx.s.orchestrator.online_workers(ctx.pool):
        return Done(Online(looks + 1))
    timeout = ctx.s.settings.health_timeout_seconds
    if ctx.since(op) >= timedelta(seconds=timeout):
        raise ctx.unhealthy(op.agent, f"did not come ONLINE in Prefect within {timeout}s "
                            f"(DEPLOYER_HEALTH_TIMEOUT_SECONDS; it is {info.detail or info.state.value})",
                            hint=_pull_hint(info.detail) or "check PREFECT_API_URL/PREFECT_API_KEY "
                            "as the agent sees them; the old agent keeps serving")
    pace = expecting(ctx.s.runtime.expected_start_seconds, START_CAP_SECONDS)
    return Wait(pace.pause(looks),
                f"worker {op.agent} to come ONLINE ({info.detail or info.state.value})")


def _pull_hint(detail: str) -> str:
    """What to check when the runtime says the agent's image could not be pulled."""
    if "pull" not in detail.lower():
        return ""
    return ("the agent cannot pull its image: the agents' identity (DEPLOYER_AGENT_IDENTITY) needs "
            "AcrPull on the registry (infra/ assigns it; a new assignment can take minutes to "
            "apply); the old agent keeps serving")
