"""The dispatcher of modules whose flow runs each get a container (``isolation: run``).

Such a module has no agent and no worker. Its deployments are registered on the ``per-run`` queue
of its pool, their job variables naming the revision's image and each run's size. One ``tick``
(every few seconds: a timer of the function app, ``deployer dev`` locally) does, for every such
module at once:

1. **start**: two Prefect calls list, for the pools of this installation's modules with
   ``isolation: run`` (or being deployed; read from the state at most every ``POOLS_SECONDS``),
   the runs of their ``per-run`` queues due within ``LEAD_SECONDS`` and those in flight. Other
   pools are never touched (two installations may share a Prefect workspace). A due run of a
   pool or queue paused in Prefect waits, as a worker would leave it. Each other due run is
   claimed (PENDING, its ``infrastructure_pid`` set to its container's name: a run someone else
   claimed is left alone, and Prefect's cancellation knows it has infrastructure) and gets a
   container of the revision's image (the deployment's: a run's own job variables cannot change
   it), sized by its deployment, running ``python -m prefect.engine`` for that run and nothing
   else. The ``.env`` values (Key Vault references read here) and Prefect's key go as secure
   values, never through Prefect: its job variables hold the image, the size and plain ``env``.
   A run awaiting a retry inside its live container is left there; a retry asked later gets a
   container of its own (the attempt is in the name).
2. **reap**: a container whose run ended is deleted; one that ended while its run was still
   PENDING or RUNNING (killed, out of memory, its image not pulled) marks the run CRASHED saying
   why (a run its process left PAUSED is not a crash); a run being cancelled has its container
   stopped and is marked CANCELLED; a run this dispatcher claimed whose container is not there
   (never started, deleted) is marked CRASHED after ``CLAIM_GRACE``. One run's trouble (its
   bundle unreadable, say) crashes that run only.

On ACI each container is a container group made through the ACI API (no ARM deployment, so the
800-entry deployment history of a resource group never fills); locally a process from the
revision's venv under the limiter (``run_limits.RUNNER``). An idle installation costs two Prefect
calls and one container listing per tick, whatever the number of modules; the containers are
read one by one (to see which ended) every half of the runtime's start time (30 s on ACI).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from deployer import run_limits
from deployer.bundle.contract import DOCKERFILE
from deployer.bundle.entrypoint import image_entrypoint
from deployer.bundle.sizing import Size, size_of
from deployer.errors import DeployerError
from deployer.models import PER_RUN_QUEUE, Request, RequestKind, Revision, Trigger
from deployer.ports.agents import AgentInfo, AgentSpec, AgentState, Role
from deployer.ports.images import Image
from deployer.ports.orchestrator import DueRun
from deployer.revisions import secret_pins
from deployer.revisions.source import RevisionSource
from deployer.services import Services

logger = logging.getLogger(__name__)
#: a run is started this long before its time: its container needs that to come up
LEAD_SECONDS = 10
#: a run claimed this long ago without a container (a dispatcher that died in between) crashed
CLAIM_GRACE = timedelta(minutes=5)
#: revisions whose ``.env`` is kept in memory (read from their bundles once per process)
CACHED_REVISIONS = 32


@dataclass
class TickReport:
    started: list[str] = field(default_factory=list)  # flow run ids
    crashed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # containers deleted

    def to_dict(self) -> dict[str, list[str]]:
        return {"started": self.started, "crashed": self.crashed, "cancelled": self.cancelled,
                "removed": self.removed}


@dataclass(frozen=True)
class _Template:
    """What every run of one revision's containers gets besides its own id and size."""

    env: dict[str, str] = field(repr=False)  # .env values: secrets
    entrypoint: tuple[str, ...]


_templates: OrderedDict[tuple[str, str], _Template] = OrderedDict()
#: when this process last read each container, per runtime
_last_look: WeakKeyDictionary[Any, datetime] = WeakKeyDictionary()


def container_name(prefix: str, run_id: str, attempt: int = 0) -> str:
    """One container per run and attempt, named by them (a second start of the same attempt
    finds the first; a retry from the Prefect UI gets a new one)."""
    return f"{prefix}-run-{run_id.replace('-', '')}" + (f"-{attempt}" if attempt else "")


#: modules of this installation are read from the state at most this often (``_pools``)
POOLS_SECONDS = 60
_pools_read: WeakKeyDictionary[Any, tuple[datetime, tuple[str, ...]]] = WeakKeyDictionary()


def tick(services: Services) -> TickReport:
    report = TickReport()
    now = services.now()
    runtime = services.runtime
    # which runs have a container: a listing; whether one ended: a read of each (ACI: a GET per
    # group, so at most every half a start time, not every tick)
    last = _last_look.get(runtime)
    look = last is None or now < last or now - last >= timedelta(
        seconds=runtime.expected_start_seconds / 2)
    listed = runtime.list(role=Role.RUN, detailed=look)
    if look:
        _last_look[runtime] = now
    containers = {c.flow_run_id for c in listed}
    live = {c.flow_run_id for c in listed if c.state not in (AgentState.STOPPED, AgentState.FAILED)}
    pools = _pools(services, now)
    due = services.orchestrator.due_runs(PER_RUN_QUEUE, now + timedelta(seconds=LEAD_SECONDS),
                                         pools) if pools else []
    mine = container_name(services.settings.agent_prefix, "")
    for run in due:
        try:
            if run.state == "SCHEDULED":
                if run.id in live and run.run_count:
                    continue  # awaiting a retry inside its own process: in flight
                _start(services, run, report)
            elif run.id not in containers and run.infrastructure.startswith(mine) \
                    and run.since is not None and now - run.since > CLAIM_GRACE:
                # claimed by this dispatcher (its marker), its container is not there
                report.crashed += services.orchestrator.mark_crashed([run.id], (
                    "claimed by the deployer's dispatcher, but its container never started (the "
                    "dispatcher stopped in between)" if run.state == "PENDING" else
                    "its container is gone (deleted by hand or by the cleanup after it ended)")
                    + "; run it again")
        except Exception:  # one run's trouble never holds up the others
            logger.exception("per_run.run_failed run=%s module=%s", run.id, run.pool)
    if look:
        try:
            _reap(services, listed, report)
        except DeployerError as exc:
            logger.warning("per_run.reap_failed error=%s", exc.message)
    if report.started or report.crashed or report.cancelled or report.removed:
        logger.info("per_run.tick %s", {k: len(v) for k, v in report.to_dict().items()})
    return report


def _pools(services: Services, now: datetime) -> tuple[str, ...]:
    """The pools the dispatcher serves: this installation's modules whose runs each get a
    container, or that a request is deploying (its smoke runs may be such runs). Another
    installation's pools, in a Prefect workspace they share, are never touched."""
    read = _pools_read.get(services.state)
    if read is not None and timedelta() <= now - read[0] < timedelta(seconds=POOLS_SECONDS):
        return read[1]
    pools = tuple(sorted(m.module for m in services.state.modules()
                         if (m.current is not None and m.current.per_run) or m.owner is not None))
    _pools_read[services.state] = (now, pools)
    return pools


def _start(services: Services, run: DueRun, report: TickReport) -> None:
    orchestrator = services.orchestrator
    if run.paused:
        return  # its pool or queue is paused in Prefect: as a worker would, leave it waiting
    try:
        template = _template(services, run.pool, run.version)
    except DeployerError as exc:
        template, why = None, exc.message
    else:
        why = f"revision {run.version or '-'} of module {run.pool} is neither serving nor being deployed"
    image = str(run.job_variables.get("image") or "")
    if template is None or not image:
        why = why if template is None else "its deployment names no image"
        report.crashed += orchestrator.mark_crashed([run.id], f"not started: {why} (deploy the "
                                                    "module again, or run the deployment again)")
        return
    settings = services.settings
    name = container_name(settings.agent_prefix, run.id, run.run_count)
    if not orchestrator.claim(run.id, name):
        return  # taken, or no longer due
    size = size_of(run.job_variables, Size(settings.agent_cpu, settings.agent_memory_gb))
    secrets, plain = settings.prefect_env()
    env = run.job_variables.get("env")
    plain.update({str(k): str(v) for k, v in (env.items() if isinstance(env, dict) else ())})
    plain["PREFECT__FLOW_RUN_ID"] = run.id
    spec = AgentSpec(
        name=name, module=run.pool,
        revision_id=run.version, image=Image(ref=image, working_dir=""),
        pool=run.pool, queue=PER_RUN_QUEUE, env={**template.env, **secrets}, settings=plain,
        entrypoint=template.entrypoint, cpu=size.cpu, memory_gb=size.memory_gb, role=Role.RUN,
        flow_run_id=run.id)
    try:
        services.runtime.start(spec)
    except DeployerError as exc:
        report.crashed += orchestrator.mark_crashed([run.id], "its container could not be "
                                                    f"started: {exc.message}")
        return
    logger.info("per_run.started run=%s module=%s revision=%s size=%s", run.id, run.pool,
                run.version, size.describe())
    report.started.append(run.id)


def _reap(services: Services, containers: list[AgentInfo], report: TickReport) -> None:
    if not containers:
        return
    orchestrator, runtime = services.orchestrator, services.runtime
    runs = orchestrator.runs_now([c.flow_run_id for c in containers if c.flow_run_id])
    for container in containers:
        run = runs.get(container.flow_run_id)
        ended = container.state in (AgentState.STOPPED, AgentState.FAILED)
        if run is not None and run.state == "CANCELLING":
            runtime.stop(container.name)
            report.cancelled += orchestrator.mark_cancelled(
                [run.id], "cancelled: the deployer stopped its container")
        elif ended:
            # a run its process left PAUSED (suspended, or paused to be rescheduled) is not a
            # crash: only one that was still starting or running when its container ended
            if run is not None and run.state in ("PENDING", "RUNNING"):
                report.crashed += orchestrator.mark_crashed([run.id], _why_ended(services, container))
            runtime.stop(container.name)
        elif run is None and container.flow_run_id:
            runtime.stop(container.name)  # the run is gone from Prefect: nothing to run
        else:
            continue
        report.removed.append(container.name)


def _why_ended(services: Services, container: AgentInfo) -> str:
    """The crash message of a run whose container ended before it did: its memory limit (what
    the limiter said, in the form ``stopped_over_limit`` reads back), or what the runtime says."""
    log = services.runtime.logs(container.name, tail=200)
    for found in run_limits.parse(log):
        if found.get("flow_run") == container.flow_run_id:
            used, limit = int(found.get("used", 0)), int(found.get("limit", 0))
            return (f"stopped over its memory limit: it used {used / 2**30:.2f} GB of "
                    f"{limit / 2**30:.2f} GB (work_pool.job_variables.memory) "
                    f"{run_limits.MARKER}{json.dumps(found, separators=(',', ':'))}")
    return f"its container ended before the run did ({container.detail or container.state.value})"


def _template(services: Services, module: str, revision_id: str) -> _Template | None:
    key = (module, revision_id)
    if key in _templates:
        _templates.move_to_end(key)
        return _templates[key]
    revision = _revision(services, module, revision_id)
    if revision is None:
        return None
    request = Request(f"run-{revision_id}", RequestKind.ROLLBACK, module,
                      Trigger("per-run", revision_id), revision, services.now())
    with RevisionSource(services, request) as source:
        bundle = source.module
        env = secret_pins.resolve(bundle.env.as_dict(), services.secrets)
        dockerfile = bundle.root / DOCKERFILE
        entrypoint = image_entrypoint(dockerfile.read_bytes() if dockerfile.is_file() else None)
    template = _Template(env, entrypoint)
    _templates[key] = template
    while len(_templates) > CACHED_REVISIONS:
        _templates.popitem(last=False)
    return template


def _revision(services: Services, module: str, revision_id: str) -> Revision | None:
    """The revision a run names: the one serving, or the one a request is deploying now (its
    smoke runs come before the commit)."""
    got = services.state.module(module)
    doc = got.value if got else None
    if doc is None:
        return None
    if doc.current is not None and doc.current.id == revision_id:
        return doc.current
    for claim in (doc.owner, doc.newest):
        record = services.state.run(module, claim.request_id) if claim else None
        if record is not None and record.value.revision is not None \
                and record.value.revision.id == revision_id:
            return record.value.revision
    return None
