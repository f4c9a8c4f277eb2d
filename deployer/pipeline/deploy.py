"""The deploy pipeline: one request, from a revision to the agent serving it. Blue/green:

    prepare   read the revision's bundle (code, .env, prefect.yaml) into a temporary folder
    plan      decide (pure, ``planning.plan_rotation``) and store the plan in the run record
    build     build the image, or reuse the one this code already has
    start     start the new agent next to the old one
    health    wait until its worker is ONLINE in Prefect
    cutover   re-point the deployments to the new agent's queue; pause the old queues and
              re-home their waiting runs; record the revision as current
    drain     let the old agents' in-flight runs finish (bounded by the drain timeout)
    retire    stop the old agents, mark runs that outlived the drain crashed, drop their queues
    record    the outcome and the history entry

Every stage is checkpointed; a redelivered request resumes after the last finished stage (a
restarted build keeps its checkpointed progress). The module lock is held throughout. Any failure
before cutover stops the new agent and leaves the old one serving.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from deployer import codec
from deployer.bootstrap import Services
from deployer.bundle import Module
from deployer.errors import (
    AgentUnhealthy,
    BuildFailed,
    BundleInvalid,
    DeployerError,
    NotFound,
    StateConflict,
)
from deployer.models import (
    AgentRef,
    HistoryEntry,
    ModuleState,
    Request,
    RequestKind,
    RunRecord,
    RunStatus,
    StageStatus,
    utcnow,
)
from deployer.pipeline.revision_bundle import load_revision_bundle
from deployer.pipeline.tracker import LogProgress, Progress, RunTracker
from deployer.pipeline.waits import wait_for_drain, wait_until_online
from deployer.planning import Operation, Plan, plan_detail, plan_from_detail, plan_rotation
from deployer.ports import AgentSpec, AgentState, Image
from deployer.state import ModuleLock

logger = logging.getLogger(__name__)
#: the host's maxDequeueCount (host.json); the last attempt records the failure for good
MAX_ATTEMPTS = 5
#: failures that a retry cannot fix: the request fails at once
DETERMINISTIC = (BuildFailed, AgentUnhealthy, BundleInvalid, NotFound)


def new_record(request: Request, status: RunStatus = RunStatus.QUEUED) -> RunRecord:
    now = utcnow()
    return RunRecord(request_id=request.request_id, kind=request.kind, module=request.module,
                     trigger=request.trigger, status=status, created_at=now, updated_at=now,
                     revision=request.revision)


def run_request(services: Services, request: Request, *, attempt: int = 1,
                max_attempts: int = MAX_ATTEMPTS, progress: Progress | None = None) -> RunRecord:
    """Carry out ``request``; a finished request is not done again. Raises (for the host to
    retry) on transient failures before the last attempt."""
    state = services.state
    if state.run(request.module, request.request_id) is None:
        try:
            state.create_run(new_record(request))
        except StateConflict:
            pass  # created by intake or a concurrent delivery
    got = state.run(request.module, request.request_id)
    assert got is not None
    if got.value.status.finished:
        logger.info("pipeline.duplicate request=%s status=%s", request.request_id, got.value.status)
        return got.value
    with state.lock(request.module) as lock:
        got = state.run(request.module, request.request_id)  # re-read under the lock
        assert got is not None
        if got.value.status.finished:
            return got.value
        tracker = RunTracker(state, got.value, got.etag, lock, progress or LogProgress(),
                             services.now)
        return Rotation(services, request, tracker, lock, attempt, max_attempts).run()


class Rotation:
    def __init__(self, services: Services, request: Request, tracker: RunTracker,
                 lock: ModuleLock, attempt: int, max_attempts: int) -> None:
        self.s = services
        self.request = request
        self.t = tracker
        self.lock = lock
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.module_name = request.module
        self.pool = request.module
        self.plan: Plan | None = None

    # -- the whole -------------------------------------------------------------------------------

    def run(self) -> RunRecord:
        self.t.save(replace(self.t.record, status=RunStatus.RUNNING, attempts=self.attempt,
                            updated_at=self.s.now()))
        try:
            with tempfile.TemporaryDirectory(prefix="deploy-") as work:
                module = self.prepare(Path(work))
                plan = self.plan = self.make_plan(module)
                if plan.noop:
                    return self.t.end(RunStatus.NOOP)
                if plan.operation("start-agent") is None:  # only leftovers to retire
                    self.retire(plan, [])
                    return self.t.end(RunStatus.NOOP)
                image = self.build(plan, module)
                self.start(plan, image, module)
                self.health(plan)
                self.cutover(plan, image, module)
            leftover = self.drain(plan)
            self.retire(plan, leftover)
            return self.finish()
        except DETERMINISTIC as exc:
            return self.fail(exc)
        except Exception as exc:
            if self.attempt >= self.max_attempts:
                return self.fail(exc)
            logger.warning("pipeline.retry request=%s attempt=%d error=%s",
                           self.request.request_id, self.attempt, _brief(exc))
            raise

    # -- stages ----------------------------------------------------------------------------------

    def prepare(self, work: Path) -> Module:
        first = self.t.done("prepare") is None
        if first:
            self.t.start("prepare")
        module = load_revision_bundle(self.s, self.request, work)
        if first:
            self.t.finish("prepare", {"files": len(module.tree.files),
                                      "deployments": [d.name for d in module.deployments]})
        return module

    def make_plan(self, module: Module) -> Plan:
        done = self.t.done("plan")
        if done is not None:
            return plan_from_detail(done)
        self.t.start("plan")
        revision = self.request.revision
        current = self.s.state.module(self.module_name)
        agents = self.s.runtime.list(self.module_name)
        same = current is not None and revision.same_as(current.value.current)
        # whether workers are ONLINE only decides anything when this revision is already current
        online = self.s.orchestrator.online_workers(self.pool) if same else set()
        image = (self.s.builder.find(self.module_name, revision.code_digest)
                 if self.request.kind is RequestKind.DEPLOY else self.known_image())
        plan = plan_rotation(kind=self.request.kind, revision=revision,
                             state=current.value if current else None, image=image, agents=agents,
                             online=online, deployments=[d.name for d in module.deployments],
                             prefix=self.s.settings.agent_prefix, now=self.s.now())
        self.t.finish("plan", plan_detail(plan))
        self.t.progress.note(f"plan: {plan.reason}")
        return plan

    def known_image(self) -> Image:
        """A redeploy's or rollback's image: it must still be in the registry."""
        revision = self.request.revision
        image = self.s.builder.resolve(self.module_name, revision.image)
        if image is None:
            raise NotFound(f"image {revision.image} of module {self.module_name} is no longer "
                           "in the registry", hint="deploy that revision's bundle again to rebuild "
                           "it, or choose another revision (`deployer history`)")
        return image

    def build(self, plan: Plan, module: Module) -> Image:
        done = self.t.done("build")
        if done is not None:
            return Image(**done["image"])
        revision = self.request.revision
        self.t.start("build")
        reuse = plan.operation("reuse-image")
        if reuse is not None:  # found by the plan, under this lock: no second registry read
            image = Image(ref=reuse.target, working_dir=reuse.detail["working_dir"],
                          digest=reuse.detail.get("digest", ""))
            self.t.finish("build", {"image": codec.to_data(image), "built": False},
                          StageStatus.SKIPPED)
            return image
        # the orchestrator's client is slow to start the first time (imports, connection): warm it
        # up while the image builds; start() calls ensure_pool again and gets any error itself
        warm = threading.Thread(target=self._warm_orchestrator, daemon=True)
        warm.start()
        try:
            image = self.s.builder.build(
                self.module_name, revision.code_digest, module.root, resume=self.t.begun("build"),
                checkpoint=lambda detail: self.t.checkpoint("build", detail))
        finally:
            warm.join()
        self.t.finish("build", {"image": codec.to_data(image), "built": True})
        return image

    def _warm_orchestrator(self) -> None:
        try:
            self.s.orchestrator.ensure_pool(self.pool)
        except DeployerError as exc:
            logger.debug("pipeline.warmup_failed error=%s", exc.message)

    def start(self, plan: Plan, image: Image, module: Module) -> None:
        if self.t.done("start") is not None:
            return
        name = plan.new_agent
        self.t.start("start", {"agent": name, "queue": plan.new_queue})
        self.s.orchestrator.ensure_pool(self.pool)
        self.s.orchestrator.ensure_queue(self.pool, plan.new_queue)
        existing = self.s.runtime.get(name)
        if existing is None or existing.state is not AgentState.RUNNING:
            if existing is not None:
                self.s.runtime.stop(name)  # what a crashed attempt left behind
            settings = self.s.settings
            secrets = module.env.as_dict()
            if settings.prefect_api_key.reveal():
                secrets["PREFECT_API_KEY"] = settings.prefect_api_key.reveal()
            self.s.runtime.start(AgentSpec(
                name=name, module=self.module_name, revision_id=self.request.revision.id,
                image=image, pool=self.pool, queue=plan.new_queue, env=secrets,
                settings={"PREFECT_API_URL": settings.prefect_api_url,
                          "PREFECT_WORKER_QUERY_SECONDS": str(settings.worker_poll_seconds)}))
        self.t.finish("start")

    def health(self, plan: Plan) -> None:
        if self.t.done("health") is not None:
            return
        self.t.start("health")
        wait_until_online(self.s, self.pool, plan.new_agent)
        self.t.finish("health")

    def cutover(self, plan: Plan, image: Image, module: Module) -> None:
        if self.t.done("cutover") is not None:
            return
        self.t.start("cutover")
        revision = self.request.revision
        removed = self.s.orchestrator.register(self.pool, plan.new_queue, module.deployments,
                                               image.working_dir, revision.id)
        rehomed: list[list[str]] = []
        for op in _ops(plan, "drain"):
            self.s.orchestrator.pause_queue(self.pool, op.detail["queue"])
            moved = self.s.orchestrator.rehome_scheduled(self.pool, op.detail["queue"],
                                                         plan.new_queue)
            rehomed += [list(pair) for pair in moved]
        now = self.s.now()
        agent = AgentRef(plan.new_agent, revision.id, plan.new_queue, now)
        current = self.s.state.module(self.module_name)
        self.lock.check()
        serving = replace(revision, image=image.ref, image_digest=image.digest)
        self.s.state.save_module(ModuleState(self.module_name, current=serving, agent=agent,
                                             request_id=self.request.request_id, updated_at=now),
                                 current.etag if current else None)
        self.t.finish("cutover", {"deployments": [d.name for d in module.deployments],
                                  "removed": removed, "rehomed": rehomed})

    def drain(self, plan: Plan) -> list[str]:
        """Wait for the old agents' in-flight runs; returns those that outlived the timeout."""
        done = self.t.done("drain")
        if done is not None:
            return list(done.get("leftover", []))
        olds = _ops(plan, "drain")
        if not olds:
            return []
        self.t.start("drain", {"agents": [op.target for op in olds]})
        started = self.t.record.stage("drain").started_at  # type: ignore[union-attr]
        leftover, timed_out = wait_for_drain(
            self.s, self.pool, [(op.target, op.detail["queue"]) for op in olds],
            started + timedelta(seconds=self.s.settings.drain_timeout_seconds), self.t.progress)
        self.t.finish("drain", {"leftover": leftover, "timed_out": timed_out})
        return leftover

    def retire(self, plan: Plan, leftover: list[str]) -> None:
        if self.t.done("retire") is not None:
            return
        stops = _ops(plan, "stop-agent")
        if not stops:
            return
        self.t.start("retire", {"agents": [op.target for op in stops]})
        for op in stops:
            self.s.runtime.stop(op.target)
        crashed = self.s.orchestrator.mark_crashed(leftover, (
            "its agent was retired by a deploy of a newer revision and the run did not finish "
            f"within the drain timeout ({self.s.settings.drain_timeout_seconds}s)")) if leftover else []
        for op in stops:
            self.s.orchestrator.delete_queue(self.pool, op.detail["queue"])
        self.t.finish("retire", {"stopped": [op.target for op in stops], "crashed": crashed})

    def finish(self) -> RunRecord:
        self.append_history(RunStatus.SUCCEEDED, None)
        return self.t.end(RunStatus.SUCCEEDED)

    # -- failure ---------------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> RunRecord:
        error = exc.to_dict() if isinstance(exc, DeployerError) else {
            "code": "internal_error", "message": f"{type(exc).__name__}: {_brief(exc)}"}
        logger.error("pipeline.failed request=%s code=%s", self.request.request_id, error["code"])
        if self.t.done("cutover") is None:
            self.roll_back()
        for stage in self.t.record.stages:
            if stage.status is StageStatus.RUNNING:
                self.t.finish(stage.name, {"error": error["message"]}, StageStatus.FAILED)
        self.append_history(RunStatus.FAILED, error)
        return self.t.end(RunStatus.FAILED, error)

    def roll_back(self) -> None:
        """Before cutover: remove the new agent (if it was started); the old one keeps serving.

        Once cutover has begun, some deployments may already point at the new agent's queue:
        removing it then would strand their runs, so both agents are left running and the
        failure says so (a redeploy or rollback finishes the job)."""
        name = self.t.begun("start").get("agent")
        if not name:
            return
        if self.t.record.stage("cutover") is not None:
            self.t.progress.note(f"cutover was interrupted: agent {name} is kept, since deployments "
                                 "may already point at it; deploy again or roll back")
            return
        try:
            self.s.runtime.stop(name)
            self.s.orchestrator.delete_queue(self.pool, name)
            self.t.progress.note(f"rolled back: agent {name} removed, the old agent keeps serving")
        except DeployerError as exc:  # cleanup retires it later; never mask the real failure
            logger.warning("pipeline.rollback_failed agent=%s error=%s", name, exc.message)

    def append_history(self, outcome: RunStatus, error: dict[str, Any] | None) -> None:
        if any(e.request_id == self.request.request_id
               for e in self.s.state.history(self.module_name)):
            return
        timings = {s.name: round(s.seconds, 3) for s in self.t.record.stages
                   if s.seconds is not None}
        image = (self.t.done("build") or {}).get("image")
        revision = self.request.revision
        if image:
            revision = replace(revision, image=image["ref"], image_digest=image.get("digest", ""))
        self.s.state.append_history(HistoryEntry(
            module=self.module_name, revision=revision, request_id=self.request.request_id,
            kind=self.request.kind, trigger=self.request.trigger, outcome=outcome, at=self.s.now(),
            stages=timings, error=error))


def _ops(plan: Plan, action: str) -> list[Operation]:
    return [op for op in plan.operations if op.action == action]


def _brief(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:300]

