"""The executor: one method per operation, each one *look* at the outside world.

A look either finishes its operation (``Done``) or says how long to wait before the next look
(``Wait``). Each checks its own precondition first, so a look repeated after a crash or a
redelivery does no harm: a build already started is polled, not started again; an agent that
exists is not started twice; re-registering is an upsert; a stopped agent stays stopped.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from deployer import codec, preflight
from deployer.bundle.contract import DOCKERFILE
from deployer.bundle.deployment_config import smoke_of
from deployer.bundle.entrypoint import image_entrypoint
from deployer.bundle.prefect_yaml import PREFECT_YAML
from deployer.errors import AgentUnhealthy, BuildFailed, BundleInvalid, HealthCheckFailed, Problem
from deployer.models import AgentRef, Baking, DrainingAgent, ModuleState, Request
from deployer.ports.agents import AgentSpec, AgentState
from deployer.ports.images import BuildState, Image
from deployer.ports.orchestrator import SMOKE_TAG
from deployer.revisions import secret_pins
from deployer.revisions.source import RevisionSource
from deployer.rotation import admission
from deployer.rotation.bake import look as bake_look
from deployer.rotation.looks import (
    BUILD_CAP_SECONDS,
    DRAIN,
    RUN_START_SECONDS,
    SMOKE,
    START_CAP_SECONDS,
    Backoff,
    expecting,
)
from deployer.rotation.operations import (
    AwaitOnline,
    AwaitReady,
    Bake,
    BuildImage,
    CheckCode,
    CheckEntrypoints,
    Commit,
    Drain,
    HoldQueue,
    Operation,
    PublishCode,
    Register,
    ReuseImage,
    SmokeRun,
    StartAgent,
    StopAgent,
)
from deployer.rotation.outcomes import Done, Outcome, Wait
from deployer.rotation.tracker import RunTracker
from deployer.services import Services
from deployer.urls import has_credentials

logger = logging.getLogger(__name__)
#: an ACR run may sit in the registry's queue before its own timeout starts counting
BUILD_QUEUE_ALLOWANCE_SECONDS = 600
#: the preflight line is among the first an agent prints; read this much of its log for it
PREFLIGHT_LOG_LINES = 2000


class Executor:
    def __init__(self, services: Services, request: Request, tracker: RunTracker,
                 source: RevisionSource, plan: tuple[Operation, ...]) -> None:
        self.s = services
        self.request = request
        self.t = tracker
        self.source = source
        self.plan = plan
        self.module = request.module
        self.pool = request.module  # one process work pool per module
        self._env_values: dict[str, str] | None = None

    def look(self, op: Operation, looks: int) -> Outcome:
        method = getattr(self, "_" + op.kind.replace("-", "_"))
        return method(op, looks)  # type: ignore[no-any-return]

    def image(self) -> Image:
        """The revision's image: built or reused by this plan, or (a code-only revision) the
        one the serving revision runs in."""
        for op in self.plan:
            done = self.t.done(op.key) if isinstance(op, BuildImage | ReuseImage) else None
            if done is not None:
                return Image(**done["image"])
        if not any(isinstance(op, BuildImage | ReuseImage) for op in self.plan):
            got = self.s.state.module(self.module)
            current = got.value.current if got else None
            if current is not None:
                return Image(ref=current.image, working_dir="", digest=current.image_digest)
        raise AssertionError("no image stage finished before it was needed")

    def pull_steps(self) -> list[dict[str, Any]]:
        """How a flow run of this revision gets its code: from the code store, or from the
        image it runs in."""
        if any(isinstance(op, PublishCode) for op in self.plan):
            revision = self.request.revision
            return self.s.code.pull_steps(self.module, revision.code_digest, revision.id)
        return self.image().pull_steps()

    def _pulls_code(self) -> bool:
        return any(isinstance(op, PublishCode) for op in self.plan)

    def _since(self, op: Operation) -> timedelta:
        stage = self.t.record.stage(op.key)
        return self.s.now() - stage.started_at if stage is not None else timedelta()

    # -- prepare ----------------------------------------------------------------------------

    def _publish_code(self, op: PublishCode, looks: int) -> Outcome:
        problems = self.s.code.verify(op.module, op.code_digest)
        if not problems:  # stored before, and still exactly that code
            return Done({"published": False}, skipped=True)
        damaged = self.s.code.exists(op.module, op.code_digest)
        self.s.code.publish(op.module, op.code_digest, self.source.module.root)
        return Done({"published": True, **({"repaired": problems[:10]} if damaged else {})})

    def _check_code(self, op: CheckCode, looks: int) -> Outcome:
        """One run of the deployer's check flow on the serving agent, pulling the new code:
        the proof that it loads in the current image, before anything points at it."""
        orchestrator = self.s.orchestrator
        run_id = self.t.begun(op.key).get("run_id")
        if not run_id:
            entrypoints = [(d.name, d.entrypoint) for d in self.source.module.deployments]
            started = orchestrator.start_code_check(
                self.pool, op.queue, self.pull_steps(), entrypoints,
                idempotency_key=f"check:{self.request.request_id}")
            run_id = started.id
            self.t.checkpoint(op.key, {"run_id": run_id})
            # the run needs the worker's next poll and a process start: wait for that on the
            # queue, not inside this invocation
            return Wait(float(self.s.settings.worker_poll_seconds) + RUN_START_SECONDS,
                        f"the check of the new code on agent {op.agent}: started", inline=False)
        run = orchestrator.run_status(run_id)
        if run.state == "COMPLETED":
            orchestrator.finish_code_check(self.pool)
            return Done({"run_id": run_id})
        if run.state in ("FAILED", "CRASHED", "CANCELLED"):
            orchestrator.finish_code_check(self.pool)
            results = preflight.parse(run.message)
            secrets = [*self.env_values().values(),
                       self.s.settings.prefect_api_key.reveal()]
            if results:
                raise self._not_loading(results, secrets)
            raise HealthCheckFailed(preflight.redact(
                f"the check run of the new code on agent {op.agent} ended {run.state}: "
                f"{run.message or 'no message'}", secrets),
                hint="the run's logs in Prefect say why; the serving revision is untouched")
        timeout = self.s.settings.health_timeout_seconds
        if self._since(op) >= timedelta(seconds=timeout):
            raise HealthCheckFailed(f"the check run of the new code on agent {op.agent} did not "
                                    f"finish within {timeout}s (DEPLOYER_HEALTH_TIMEOUT_SECONDS)",
                                    hint="is the agent's worker polling? `deployer status`")
        pace = Backoff(0.5, 1.5, max(float(self.s.settings.worker_poll_seconds), 1.0))
        return Wait(pace.pause(looks), f"the check of the new code on agent {op.agent}: {run.state}")

    def _not_loading(self, results: list[dict[str, Any]], secrets: list[str]) -> BundleInvalid:
        failed = [r for r in results if not r.get("ok")]
        return BundleInvalid([Problem(
            str(r.get("file") or PREFECT_YAML), r.get("line"), preflight.redact(
                f"deployment {r.get('deployment')!r}: {r.get('exception')}: {r.get('message')} "
                f"(loading {r.get('entrypoint')} in the revision's own environment)", secrets))
            for r in failed], source=f"revision {self.request.revision.id} of {self.module}")

    def _build(self, op: BuildImage, looks: int) -> Outcome:
        builder = self.s.builder
        build_id = self.t.begun(op.key).get("build_id")
        if not build_id:  # the plan found no image for this code (under this module's ownership)
            build_id = builder.start_build(op.module, op.image_key, self.source.module.root)
            self.t.checkpoint(op.key, {"build_id": build_id})
            logger.info("rotation.build_started module=%s build=%s", op.module, build_id)
        progress = builder.build_status(op.module, op.image_key, build_id)
        if progress.state is BuildState.SUCCEEDED:
            assert progress.image is not None
            return Done({"image": codec.to_data(progress.image), "built": True})
        if progress.state is BuildState.FAILED:
            raise BuildFailed(f"the image build of module {op.module} (build {build_id}) failed"
                              + (f": {progress.detail}" if progress.detail else ""),
                              log_tail=progress.log_tail, hint=progress.hint or
                              "fix the module and upload it again; the running agent is untouched")
        limit = self.s.settings.build_timeout_seconds + BUILD_QUEUE_ALLOWANCE_SECONDS
        if self._since(op) > timedelta(seconds=limit):
            raise BuildFailed(f"the image build of module {op.module} (build {build_id}) is still "
                              f"{progress.detail or 'running'} after {limit}s "
                              "(DEPLOYER_BUILD_TIMEOUT_SECONDS plus the registry's queue)")
        pace = expecting(builder.expected_build_seconds, BUILD_CAP_SECONDS)
        return Wait(pace.pause(looks), f"build {build_id} of {op.module}: "
                    f"{progress.detail or 'running'}")

    def _reuse_image(self, op: ReuseImage, looks: int) -> Outcome:
        image = Image(ref=op.ref, working_dir=op.working_dir, digest=op.digest)
        return Done({"image": codec.to_data(image), "built": False}, skipped=True)

    def _start_agent(self, op: StartAgent, looks: int) -> Outcome:
        runtime, orchestrator, settings = self.s.runtime, self.s.orchestrator, self.s.settings
        existing = runtime.get(op.agent)
        if existing is not None:
            if existing.state in (AgentState.STOPPED, AgentState.FAILED):
                raise self._unhealthy(op.agent, f"stopped before its worker came ONLINE "
                                      f"({existing.detail or existing.state.value})")
            return Done({"agent": op.agent, "queue": op.queue})  # started by an earlier look
        orchestrator.ensure_pool(self.pool)
        orchestrator.ensure_queue(self.pool, op.queue)
        secrets = self.env_values()  # Key Vault references read here, handed over as secure values
        if settings.prefect_api_key.reveal():
            secrets["PREFECT_API_KEY"] = settings.prefect_api_key.reveal()
        plain = {"PREFECT_WORKER_QUERY_SECONDS": str(settings.worker_poll_seconds)}
        # an API URL with a credential in it (userinfo, a token) goes as a secret too
        (secrets if has_credentials(settings.prefect_api_url) else plain)["PREFECT_API_URL"] = \
            settings.prefect_api_url
        runtime.start(AgentSpec(
            name=op.agent, module=self.module, revision_id=op.revision_id, image=self.image(),
            pool=self.pool, queue=op.queue, env=secrets, settings=plain,
            entrypoints=tuple((d.name, d.entrypoint) for d in self.source.module.deployments),
            pull_steps=tuple(self.pull_steps()) if self._pulls_code() else (),
            entrypoint=image_entrypoint(self._dockerfile())))
        return Done({"agent": op.agent, "queue": op.queue})

    def env_values(self) -> dict[str, str]:
        """The module's .env with its (pinned) Key Vault references read: what the agent gets."""
        if self._env_values is None:
            self._env_values = secret_pins.resolve(self.source.module.env.as_dict(), self.s.secrets)
        return self._env_values

    def _dockerfile(self) -> bytes | None:
        path = self.source.module.root / DOCKERFILE
        return path.read_bytes() if path.is_file() else None

    def _check_entrypoints(self, op: CheckEntrypoints, looks: int) -> Outcome:
        runtime = self.s.runtime
        info = runtime.get(op.agent)
        results = preflight.parse(runtime.logs(op.agent, tail=PREFLIGHT_LOG_LINES))
        if results is None:
            if info is None or info.state in (AgentState.STOPPED, AgentState.FAILED):
                raise self._unhealthy(op.agent, "stopped before it reported whether its flows "
                                      f"load ({info.detail if info else 'gone'})")
            timeout = self.s.settings.health_timeout_seconds
            if self._since(op) >= timedelta(seconds=timeout):
                raise self._unhealthy(op.agent, f"did not report within {timeout}s whether its "
                                      "flows load (DEPLOYER_HEALTH_TIMEOUT_SECONDS)")
            pace = expecting(runtime.expected_start_seconds, START_CAP_SECONDS)
            return Wait(pace.pause(looks), f"agent {op.agent} to load its flows")
        if any(not r.get("ok") for r in results):
            raise self._not_loading(results, [*self.env_values().values(),
                                              self.s.settings.prefect_api_key.reveal()])
        return Done({"entrypoints": len(results)})

    def _wait_online(self, op: AwaitOnline, looks: int) -> Outcome:
        info = self.s.runtime.get(op.agent)
        if info is None or info.state in (AgentState.STOPPED, AgentState.FAILED):
            raise self._unhealthy(op.agent, "stopped before its worker came ONLINE "
                                  f"({info.detail if info else 'gone'})")
        if op.agent in self.s.orchestrator.online_workers(self.pool):
            return Done({"online_after_looks": looks + 1})
        timeout = self.s.settings.health_timeout_seconds
        if self._since(op) >= timedelta(seconds=timeout):
            raise self._unhealthy(op.agent, f"did not come ONLINE in Prefect within {timeout}s "
                                  "(DEPLOYER_HEALTH_TIMEOUT_SECONDS)",
                                  hint="check PREFECT_API_URL/PREFECT_API_KEY as the agent sees "
                                  "them; the old agent keeps serving")
        pace = expecting(self.s.runtime.expected_start_seconds, START_CAP_SECONDS)
        return Wait(pace.pause(looks),
                    f"worker {op.agent} to come ONLINE ({info.detail or info.state.value})")

    def _unhealthy(self, agent: str, what: str, hint: str = "") -> AgentUnhealthy:
        return AgentUnhealthy(f"agent {agent} {what}", log_tail=self.s.runtime.logs(agent),
                              hint=hint or "the agent's log tail shows why; the old agent keeps "
                              "serving")

    # -- cutover ----------------------------------------------------------------------------

    def _register(self, op: Register, looks: int) -> Outcome:
        module = self.source.module
        removed = self.s.orchestrator.register(self.pool, op.queue, module.deployments,
                                               self.pull_steps(), self.request.revision.id)
        return Done({"deployments": [d.name for d in module.deployments], "removed": removed})

    def _wait_ready(self, op: AwaitReady, looks: int) -> Outcome:
        specs = [d for d in self.source.module.deployments if d.name in op.deployments]
        readiness = self.s.orchestrator.readiness(self.pool, op.queue, specs)
        if readiness.ready:
            return Done({"queue": readiness.queue, "deployments": readiness.deployments})
        timeout = self.s.settings.health_timeout_seconds
        if self._since(op) >= timedelta(seconds=timeout):
            states = ", ".join(f"{n} {s}" for n, s in readiness.deployments.items())
            raise HealthCheckFailed(f"Prefect did not report queue {op.queue} and its deployments "
                                    f"READY within {timeout}s (queue {readiness.queue}; {states})",
                                    hint="the worker must poll its queue; its log tail shows why "
                                    "not. The old agent serves again")
        pace = Backoff(0.5, 1.5, max(float(self.s.settings.worker_poll_seconds), 1.0))
        return Wait(pace.pause(looks), f"Prefect to report queue {op.queue} READY "
                    f"(now {readiness.queue})")

    def _smoke_run(self, op: SmokeRun, looks: int) -> Outcome:
        orchestrator = self.s.orchestrator
        spec = next(d for d in self.source.module.deployments if d.name == op.deployment)
        smoke = smoke_of(spec) or {"parameters": {}, "timeout_seconds": 600}
        run_id = self.t.begun(op.key).get("run_id")
        if not run_id:
            started = orchestrator.start_run(
                op.flow, op.deployment, smoke["parameters"], tags=[SMOKE_TAG],
                idempotency_key=f"smoke:{self.request.request_id}:{op.deployment}")
            run_id = started.id
            self.t.checkpoint(op.key, {"run_id": run_id, "run_name": started.name})
        run = orchestrator.run_status(run_id)
        if run.state == "COMPLETED":
            return Done({"run_id": run_id, "state": run.state})
        if run.state in ("FAILED", "CRASHED", "CANCELLED"):
            raise HealthCheckFailed(f"the smoke run {run.name} ({run_id}) of deployment "
                                    f"{op.flow}/{op.deployment} ended {run.state}",
                                    hint="its logs are in Prefect; the old agent serves again")
        timeout = int(smoke["timeout_seconds"])
        if self._since(op) >= timedelta(seconds=timeout):
            raise HealthCheckFailed(f"the smoke run {run.name} ({run_id}) of deployment "
                                    f"{op.flow}/{op.deployment} did not finish within {timeout}s "
                                    "(deployer.smoke.timeout_seconds)")
        return Wait(SMOKE.pause(looks), f"smoke run {run.name} of {op.deployment}: {run.state}")

    def _hold_queue(self, op: HoldQueue, looks: int) -> Outcome:
        self.s.orchestrator.pause_queue(self.pool, op.queue)
        moved = self.s.orchestrator.rehome_scheduled(self.pool, op.queue, op.to_queue)
        return Done({"rehomed": [list(pair) for pair in moved]})

    def _commit(self, op: Commit, looks: int) -> Outcome:
        state, now = self.s.state, self.s.now()
        got = state.module(self.module)
        doc = got.value if got else ModuleState(self.module, updated_at=now)
        image = self.image()
        serving = replace(self.request.revision, image=image.ref, image_digest=image.digest,
                          code_store=self._pulls_code())
        queues = {d.agent: d.queue for d in self.plan if isinstance(d, Drain)}
        deadline = now + timedelta(seconds=self.s.settings.drain_timeout_seconds)
        olds = {d.name: d for d in doc.draining}
        for name in op.draining:
            if name not in olds:
                revision = doc.agent.revision_id if doc.agent and doc.agent.name == name else ""
                olds[name] = DrainingAgent(name, queues.get(name, name), revision,
                                           self.request.request_id, now, deadline)
        owner = doc.owner if doc.owner and doc.owner.request_id != self.request.request_id else None
        bake = next((b for b in self.plan if isinstance(b, Bake)), None)
        baking = Baking(self.request.request_id, op.revision_id, now, now + timedelta(
            seconds=self.s.settings.bake_seconds), self.s.settings.bake_runs,
            bake.previous) if bake is not None else None
        committed = replace(doc, current=serving, agent=AgentRef(op.agent, op.revision_id, op.agent, now),
                            request_id=self.request.request_id, updated_at=now, owner=owner,
                            draining=tuple(olds.values()), baking=baking, removed=None,
                            refused=tuple(r for r in doc.refused if doc.refusal(serving) is not r))
        state.save_module(committed, got.etag if got else None)
        state.remove_pending(self.module, self.request.request_id)  # no longer competing
        woken = admission.wake(self.s, self.module, self.request.request_id)
        return Done({"revision": op.revision_id, "agent": op.agent, "draining": list(op.draining),
                     "woke": woken,
                     "previous": codec.to_data(doc.current), "previous_agent": codec.to_data(doc.agent)})

    def _bake(self, op: Bake, looks: int) -> Outcome:
        return bake_look(self, op, looks)

    # -- retire -----------------------------------------------------------------------------

    def _drain(self, op: Drain, looks: int) -> Outcome:
        runs = self.s.orchestrator.in_flight(self.pool, op.queue)
        if not runs:
            return Done({"leftover": [], "crashed": []})
        info = self.s.runtime.get(op.agent)
        ids = [r.id for r in runs]
        revision = self.request.revision.id
        if info is None or info.state is not AgentState.RUNNING:
            crashed = self.s.orchestrator.mark_crashed(ids, (
                f"its agent {op.agent} stopped while the run was in flight; it can never finish "
                f"(the deploy of revision {revision} had moved new runs elsewhere)"))
            return Done({"leftover": ids, "crashed": crashed, "reason": "agent gone"})
        deadline = self._drain_deadline(op)
        if self.s.now() >= deadline:
            timeout = self.s.settings.drain_timeout_seconds
            crashed = self.s.orchestrator.mark_crashed(ids, (
                f"still running on agent {op.agent} at its drain deadline, {timeout}s after the "
                f"deploy of revision {revision} (DEPLOYER_DRAIN_TIMEOUT_SECONDS)"))
            return Done({"leftover": ids, "crashed": crashed, "timed_out": True})
        names = ", ".join(r.name for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
        return Wait(DRAIN.pause(looks), f"{len(runs)} run(s) in flight on old agent {op.agent}: "
                    f"{names}", {"in_flight": [{"id": r.id, "name": r.name, "state": r.state}
                                              for r in runs]})

    def _drain_deadline(self, op: Drain):  # type: ignore[no-untyped-def]
        got = self.s.state.module(self.module)
        for draining in got.value.draining if got else ():
            if draining.name == op.agent:
                return draining.deadline
        stage = self.t.record.stage(op.key)
        started = stage.started_at if stage is not None else self.s.now()
        return started + timedelta(seconds=self.s.settings.drain_timeout_seconds)

    def _stop_agent(self, op: StopAgent, looks: int) -> Outcome:
        self.s.runtime.stop(op.agent)
        self.s.orchestrator.delete_queue(self.pool, op.queue)
        got = self.s.state.module(self.module)
        if got is not None and any(d.name == op.agent for d in got.value.draining):
            self.s.state.save_module(replace(got.value, updated_at=self.s.now(), draining=tuple(
                d for d in got.value.draining if d.name != op.agent)), got.etag)
        return Done({"stopped": op.agent})
