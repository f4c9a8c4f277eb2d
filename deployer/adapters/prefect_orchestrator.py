"""``Orchestrator`` on the Prefect API (a local server, a remote server or Prefect Cloud).

Routing (see DESIGN.md, "Routing and draining"): one process work pool per module, one work queue
per agent. Deployments point at the serving agent's queue; at cutover they are re-registered on
the new queue (the server then drops their future auto-scheduled runs and re-creates them there;
the deployer re-creates the other runs not started yet there, at the new version: see
``prefect_flow_runs.relabel``), the old queue is paused (its worker takes nothing new), and runs
still waiting in it are re-homed: re-created on the new queue the same way, then deleted.

Uses the Prefect SDK's ``SyncPrefectClient`` (it handles Cloud auth and retries 429/503 with
``Retry-After``); every Prefect exception is translated here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
    WorkPoolFilter,
    WorkPoolFilterName,
    WorkQueueFilter,
    WorkQueueFilterName,
)
from prefect.client.schemas.objects import StateType, WorkerStatus
from prefect.client.schemas.sorting import FlowRunSort, LogSort
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Crashed

from deployer.adapters.prefect_deployments import MANAGED_TAG, deployment_payload, name_refusal
from deployer.adapters.prefect_errors import first_error, not_found, refusal_detail, translated
from deployer.adapters.prefect_flow_runs import recreate, relabel, run_ref, successor
from deployer.adapters.prefect_per_run import PerRunCalls
from deployer.bundle.prefect_yaml import PREFECT_YAML, DeploymentSpec
from deployer.errors import BundleInvalid, NotFound, Problem
from deployer.ports.orchestrator import SMOKE_TAG, Readiness, RunLog, RunRef, refuse_unknown
from deployer.preflight import CHECK_FILE, CHECK_FLOW_NAME

logger = logging.getLogger(__name__)
IN_FLIGHT = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED]
FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]


class PrefectOrchestrator(PerRunCalls):
    def __init__(self, api_url: str, api_key: str = "") -> None:
        self._api_url = api_url
        self._api_key = api_key or None
        self._client: SyncPrefectClient | None = None
        self._pools: set[str] = set()

    @contextlib.contextmanager
    def _api(self, what: str) -> Iterator[SyncPrefectClient]:
        if self._client is None:
            client = SyncPrefectClient(self._api_url, api_key=self._api_key)
            with translated(what, self._api_url):
                client.__enter__()
            self._client = client
        with translated(what, self._api_url):
            yield self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None

    def ensure_pool(self, pool: str) -> None:
        if pool in self._pools:
            return
        with self._api(f"ensure work pool {pool}") as api:
            try:
                api.read_work_pool(pool)
            except ObjectNotFound:
                with contextlib.suppress(ObjectAlreadyExists):
                    api.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        self._pools.add(pool)

    def ensure_queue(self, pool: str, queue: str) -> None:
        with self._api(f"create work queue {queue}") as api, \
                contextlib.suppress(ObjectAlreadyExists):
            api.create_work_queue(name=queue, work_pool_name=pool)

    def online_workers(self, pool: str) -> set[str]:
        with self._api(f"read workers of pool {pool}") as api:
            try:
                workers = api.read_workers_for_work_pool(pool)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if not_found(exc):
                    return set()  # no pool yet: no workers
                raise
        return {w.name for w in workers if w.status == WorkerStatus.ONLINE}

    def register(self, pool: str, queue: str, deployments: Sequence[DeploymentSpec],
                 pull_steps: Sequence[dict[str, Any]], revision_id: str,
                 image: str = "") -> list[str]:
        """Upsert the module's deployments on ``queue``; delete the deployer-made ones of the
        pool that the module no longer declares (their runs would be stranded otherwise)."""
        # build every payload first: a schedule the client rejects must fail before anything
        # has been re-pointed, naming the deployment and its line, never as a pydantic dump
        payloads, refused = [], []
        for spec in deployments:
            for what, name in (("deployment", spec.name), ("flow", spec.flow_name)):
                if name_refusal(name):  # validate refuses these: a bundle from before it did
                    refused.append(Problem(PREFECT_YAML, spec.line, f"{what} name {name!r} of "
                                           f"module {pool}: {name_refusal(name)}"))
            try:
                payloads.append(deployment_payload(spec, pool, queue, pull_steps, revision_id,
                                                   image))
            except (ValueError, TypeError) as exc:
                refused.append(Problem(PREFECT_YAML, spec.line, f"deployment {spec.name!r} of "
                                       f"module {pool}: {first_error(exc)}"))
        if refused:
            raise BundleInvalid(refused, source=f"module {pool}")
        with self._api(f"register deployments of pool {pool}") as api:
            problems = _foreign(api, pool, deployments)
            if problems:
                raise BundleInvalid(problems, source=f"module {pool}")
            keep: set[tuple[UUID, str]] = set()  # (flow id, name): what names a deployment
            for spec, payload in zip(deployments, payloads, strict=True):
                try:
                    flow_id = api.create_flow_from_name(spec.flow_name)
                    api.create_deployment(flow_id=flow_id, **payload)
                except PrefectHTTPStatusError as exc:
                    status = exc.response.status_code
                    if 400 <= status < 500 and status not in (401, 403, 408, 429):
                        raise BundleInvalid([Problem(PREFECT_YAML, spec.line, (
                            f"deployment {spec.name!r} of module {pool}: Prefect refused it "
                            f"({status}: {refusal_detail(exc)})"))], source=f"module {pool}") from exc
                    raise
                keep.add((flow_id, spec.name))
            removed, kept = [], []
            for deployment in api.read_deployments(work_pool_filter=_pool_filter(pool)):
                if (deployment.flow_id, deployment.name) in keep:
                    kept.append(deployment.id)
                elif MANAGED_TAG in (deployment.tags or []):
                    api.delete_deployment(deployment.id)
                    removed.append(deployment.name)
            relabelled = relabel(api, pool, queue, kept, revision_id)
        logger.info("orchestrator.registered pool=%s queue=%s deployments=%d removed=%d "
                    "relabelled=%d", pool, queue, len(payloads), len(removed), len(relabelled))
        return removed

    def start_code_check(self, pool: str, queue: str, pull_steps: Sequence[dict[str, Any]],
                         entrypoints: Sequence[tuple[str, str]], *,
                         idempotency_key: str) -> RunRef:
        with self._api(f"start the code check of pool {pool}") as api:
            flow_id = api.create_flow_from_name(CHECK_FLOW_NAME)
            deployment_id = api.create_deployment(
                flow_id=flow_id, name=pool, entrypoint=f"{CHECK_FILE}:check",
                work_pool_name=pool, work_queue_name=queue, pull_steps=[dict(s) for s in pull_steps],
                parameters={"entrypoints": [list(e) for e in entrypoints]},
                tags=[CHECK_FLOW_NAME], enforce_parameter_schema=False)
            run = api.create_flow_run_from_deployment(deployment_id, idempotency_key=idempotency_key,
                                                      tags=[SMOKE_TAG, CHECK_FLOW_NAME])
        return run_ref(run)

    def finish_code_check(self, pool: str) -> None:
        with self._api(f"remove the code check of pool {pool}") as api:
            try:
                found = api.read_deployment_by_name(f"{CHECK_FLOW_NAME}/{pool}")
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if not_found(exc):
                    return
                raise
            with contextlib.suppress(ObjectNotFound):
                api.delete_deployment(found.id)

    def conflicts(self, pool: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]:
        with self._api(f"look up the deployments of pool {pool}") as api:
            return _foreign(api, pool, deployments)

    def pause_queue(self, pool: str, queue: str) -> None:
        with self._api(f"pause work queue {queue}") as api:
            try:
                found = api.read_work_queue_by_name(queue, work_pool_name=pool)
            except ObjectNotFound:
                return
            api.update_work_queue(found.id, is_paused=True)

    def resume_queue(self, pool: str, queue: str) -> None:
        with self._api(f"resume work queue {queue}") as api:
            try:
                found = api.read_work_queue_by_name(queue, work_pool_name=pool)
            except ObjectNotFound:
                return
            api.update_work_queue(found.id, is_paused=False)

    def readiness(self, pool: str, queue: str,
                  deployments: Sequence[DeploymentSpec]) -> Readiness:
        with self._api(f"read the status of work queue {queue}") as api:
            try:
                found = api.read_work_queue_by_name(queue, work_pool_name=pool)
                queue_status = _status(found.status) if not found.is_paused else "PAUSED"
            except ObjectNotFound:
                queue_status = "missing"
            statuses: dict[str, str] = {}
            for spec in deployments:
                try:
                    deployment = api.read_deployment_by_name(f"{spec.flow_name}/{spec.name}")
                except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                    if not not_found(exc):
                        raise
                    statuses[spec.name] = "missing"
                    continue
                statuses[spec.name] = (_status(deployment.status)
                                       if deployment.work_queue_name == queue else "elsewhere")
        return Readiness(queue_status, statuses)

    def finished_runs(self, pool: str, queue: str, since: datetime,
                      limit: int = 50) -> list[RunRef]:
        with self._api(f"read finished runs of queue {queue}") as api:
            runs = api.read_flow_runs(
                work_pool_filter=_pool_filter(pool),
                work_queue_filter=WorkQueueFilter(name=WorkQueueFilterName(any_=[queue])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=FINAL)),
                    # the filter's field is Prefect's own DateTime type; a datetime is what it takes
                    start_time=FlowRunFilterStartTime(after_=since)),  # type: ignore[arg-type]
                sort=FlowRunSort.START_TIME_DESC, limit=limit)
        return [run_ref(r) for r in runs if SMOKE_TAG not in (r.tags or [])]

    def rehome_scheduled(self, pool: str, from_queue: str, to_queue: str) -> list[tuple[str, str]]:
        moved: list[tuple[str, str]] = []
        with self._api(f"re-home scheduled runs of {from_queue}") as api:
            runs = api.read_flow_runs(
                work_pool_filter=_pool_filter(pool),
                work_queue_filter=WorkQueueFilter(name=WorkQueueFilterName(any_=[from_queue])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
            for run in runs:
                if run.run_count:  # awaiting a retry inside its running process: in flight
                    continue
                if run.deployment_id is not None and _deployment_exists(api, run.deployment_id):
                    moved.append((str(run.id), recreate(api, run, to_queue, f"rehome:{run.id}")))
                else:
                    api.delete_flow_run(run.id)
        return moved

    def in_flight(self, pool: str, queue: str) -> list[RunRef]:
        with self._api(f"read runs of queue {queue}") as api:
            runs = api.read_flow_runs(
                work_pool_filter=_pool_filter(pool),
                work_queue_filter=WorkQueueFilter(name=WorkQueueFilterName(any_=[queue])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=IN_FLIGHT))))
        return [RunRef(str(r.id), r.name, r.state.type.value if r.state else "UNKNOWN")
                for r in runs]

    def mark_crashed(self, run_ids: Sequence[str], message: str) -> list[str]:
        changed = []
        with self._api("mark runs crashed") as api:
            for run_id in run_ids:
                try:
                    run = api.read_flow_run(UUID(run_id))
                except ObjectNotFound:
                    continue
                if run.state is None or not run.state.is_final():
                    api.set_flow_run_state(run.id, Crashed(message=message), force=True)
                    changed.append(run_id)
        return changed

    def delete_queue(self, pool: str, queue: str) -> None:
        with self._api(f"delete work queue {queue}") as api:
            try:
                found = api.read_work_queue_by_name(queue, work_pool_name=pool)
            except ObjectNotFound:
                return
            with contextlib.suppress(ObjectNotFound):
                api.delete_work_queue_by_id(found.id)


    def queues(self, pool: str) -> dict[str, int]:
        waiting = [StateType.SCHEDULED, *IN_FLIGHT]
        with self._api(f"read work queues of pool {pool}") as api:
            try:
                found = api.read_work_queues(work_pool_name=pool)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if not_found(exc):
                    return {}
                raise
            return {q.name: len(api.read_flow_runs(
                work_pool_filter=_pool_filter(pool),
                work_queue_filter=WorkQueueFilter(name=WorkQueueFilterName(any_=[q.name])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=waiting))))) for q in found}

    def versions(self, pool: str) -> dict[str, str]:
        with self._api(f"read the deployments of pool {pool}") as api:
            found = api.read_deployments(work_pool_filter=_pool_filter(pool))
            ids = list({d.flow_id for d in found})
            flows = {f.id: f.name for f in api.read_flows(
                flow_filter=FlowFilter(id=FlowFilterId(any_=ids)))} if ids else {}
        return {f"{flows.get(d.flow_id, d.flow_id)}/{d.name}": d.version or "" for d in found}

    def start_run(self, flow_name: str, deployment: str,
                  parameters: dict[str, Any] | None = None, *, idempotency_key: str = "",
                  tags: Sequence[str] = ()) -> RunRef:
        name = f"{flow_name}/{deployment}"
        with self._api(f"start a run of {name}") as api:
            try:
                found = api.read_deployment_by_name(name)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if not_found(exc):
                    raise NotFound(f"no deployment {name} in Prefect",
                                   hint="`deployer status` shows what is deployed") from exc
                raise
            refuse_unknown(name, found.parameter_openapi_schema, parameters or {})
            run = api.create_flow_run_from_deployment(
                found.id, parameters=parameters or {}, idempotency_key=idempotency_key or None,
                tags=list(tags) or None)
        return run_ref(run)

    def run_status(self, run_id: str) -> RunRef:
        with self._api(f"read flow run {run_id}") as api:
            try:
                return run_ref(api.read_flow_run(UUID(run_id)))
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if not_found(exc):
                    raise NotFound(f"no flow run {run_id} in Prefect") from exc
                raise

    def successor(self, run: RunRef) -> RunRef | None:
        with self._api(f"look for the run that replaced flow run {run.id}") as api:
            return successor(api, run)

    def run_logs(self, run_id: str, since: datetime | None = None, limit: int = 200) -> list[RunLog]:
        # pydantic takes any aware datetime here; the annotation names Prefect's own DateTime
        when = LogFilterTimestamp(after_=since) if since is not None else None  # type: ignore[arg-type]
        with self._api(f"read the logs of flow run {run_id}") as api:
            found = api.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                any_=[UUID(run_id)]), timestamp=when), limit=limit, sort=LogSort.TIMESTAMP_ASC)
        return [RunLog(str(log.id), log.timestamp, logging.getLevelName(log.level), log.message)
                for log in found]

    def run_artifacts(self, run_id: str) -> list[str]:
        with self._api(f"read artifacts of flow run {run_id}") as api:
            artifacts = api.read_artifacts(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[UUID(run_id)])))
        return [str(a.data) for a in artifacts if a.type in ("markdown", "table")]


def _status(value: Any) -> str:
    return str(getattr(value, "value", value) or "NOT_READY").upper()


def _foreign(api: SyncPrefectClient, pool: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]:
    """Prefect names a deployment ``flow/deployment``; if another module's pool already has that
    name, upserting would steal it: such deployments are problems, found before anything changes."""
    problems = []
    for spec in deployments:
        try:
            found = api.read_deployment_by_name(f"{spec.flow_name}/{spec.name}")
        except (ObjectNotFound, PrefectHTTPStatusError) as exc:
            if not_found(exc):
                continue
            raise
        if found.work_pool_name not in (None, pool):
            problems.append(Problem(PREFECT_YAML, spec.line, (
                f"deployment {spec.flow_name}/{spec.name} already belongs to work pool "
                f"{found.work_pool_name!r} (module {found.work_pool_name}); rename the "
                "deployment or the flow")))
    return problems


def _pool_filter(pool: str) -> WorkPoolFilter:
    return WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))


def _deployment_exists(api: SyncPrefectClient, deployment_id: UUID) -> bool:
    try:
        api.read_deployment(deployment_id)
    except ObjectNotFound:
        return False
    return True
