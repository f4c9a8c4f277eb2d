"""The Prefect calls of the dispatcher (``deployer.pipeline.per_run``), for modules whose flow
runs each get a container: the due and in-flight runs of the installation's pools, a claim, the
runs' states. A mixin of ``PrefectOrchestrator`` (it shares its client)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
    WorkQueueFilter,
    WorkQueueFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Cancelled, Pending

from deployer.adapters.prefect_flow_runs import run_ref
from deployer.ports.orchestrator import DueRun, RunRef

#: the most ids one ``flow_runs/filter`` takes (Prefect refuses a limit above 200)
PAGE = 200


class PerRunCalls:
    def _api(self, what: str) -> contextlib.AbstractContextManager[SyncPrefectClient]:
        raise NotImplementedError  # PrefectOrchestrator's

    def due_runs(self, queue: str, before: datetime, pools: Sequence[str],
                 limit: int = 50) -> list[DueRun]:
        if not pools:
            return []
        queues = WorkQueueFilter(name=WorkQueueFilterName(any_=[queue]))
        ours = WorkPoolFilter(name=WorkPoolFilterName(any_=sorted(pools)))
        with self._api(f"read the due runs of the {queue} queues") as api:
            due = api.read_flow_runs(
                work_pool_filter=ours, work_queue_filter=queues, flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                    # the filter's field is Prefect's own DateTime type; a datetime is what it takes
                    next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(
                        before_=before)),  # type: ignore[arg-type]
                sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC, limit=limit)
            due += api.read_flow_runs(
                work_pool_filter=ours, work_queue_filter=queues, flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(
                        any_=[StateType.PENDING, StateType.RUNNING]))), limit=PAGE)
            ids = sorted({r.deployment_id for r in due if r.deployment_id is not None})
            deployments = {d.id: d for d in api.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)))} if ids else {}
            paused: set[str] = set()
            if any(r.state is not None and r.state.type is StateType.SCHEDULED for r in due):
                # what only a polling worker would honour: a paused pool or queue takes no run
                paused = {p.name for p in api.read_work_pools(work_pool_filter=ours) if p.is_paused}
                paused |= {q.work_pool_name or "" for q in api.read_work_queues(
                    work_queue_filter=queues) if q.is_paused}
        out = []
        for run in due:
            deployment = deployments.get(run.deployment_id) if run.deployment_id else None
            variables = _merged(dict(deployment.job_variables or {}) if deployment else {},
                                dict(run.job_variables or {}))
            pool = run.work_pool_name or ""
            out.append(DueRun(str(run.id), run.name, pool, str(run.deployment_version or ""),
                              run.state.type.value if run.state else "UNKNOWN", variables,
                              run.state.timestamp if run.state else None,
                              run_count=run.run_count or 0,
                              infrastructure=str(run.infrastructure_pid or ""),
                              paused=pool in paused))
        return out

    def claim(self, run_id: str, marker: str) -> bool:
        with self._api(f"claim flow run {run_id}") as api:
            result: Any = api.set_flow_run_state(UUID(run_id), Pending())
            if str(getattr(result.status, "value", result.status)) != "ACCEPT":
                return False
            # whose it is: Prefect's cancellation looks for it, and the dispatcher crashes only
            # the runs it claimed
            api.update_flow_run(UUID(run_id), infrastructure_pid=marker)
        return True

    def runs_now(self, run_ids: Sequence[str]) -> dict[str, RunRef]:
        out: dict[str, RunRef] = {}
        ids = sorted(set(run_ids))
        with self._api("read the state of runs") as api:
            for at in range(0, len(ids), PAGE):
                page = [UUID(i) for i in ids[at:at + PAGE]]
                runs = api.read_flow_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=page)), limit=len(page))
                out.update({str(r.id): run_ref(r) for r in runs})
        return out

    def mark_cancelled(self, run_ids: Sequence[str], message: str) -> list[str]:
        changed = []
        with self._api("mark runs cancelled") as api:
            for run_id in run_ids:
                api.set_flow_run_state(UUID(run_id), Cancelled(message=message), force=True)
                changed.append(run_id)
        return changed


def _merged(deployment: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The run's job variables over its deployment's; ``env`` merged key by key, as Prefect's
    workers merge them. The image is the deployment's alone (the deployer registers it): a run
    cannot point its container, which gets the module's secrets, at another image."""
    env = {**dict(deployment.get("env") or {}), **dict(run.get("env") or {})}
    merged = {**deployment, **{k: v for k, v in run.items() if k != "image"}}
    return {**merged, **({"env": env} if env else {})}
