"""The Prefect calls of the dispatcher (``deployer.dispatch``), for modules whose flow runs each
get a container: the due runs of every pool in one call, a claim, the runs' states in one call.
A mixin of ``PrefectOrchestrator`` (it shares its client)."""

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
    WorkQueueFilter,
    WorkQueueFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Cancelled, Pending

from deployer.adapters.prefect_flow_runs import run_ref
from deployer.ports.orchestrator import DueRun, RunRef


class PerRunCalls:
    def _api(self, what: str) -> contextlib.AbstractContextManager[SyncPrefectClient]:
        raise NotImplementedError  # PrefectOrchestrator's

    def due_runs(self, queue: str, before: datetime, limit: int = 50) -> list[DueRun]:
        queues = WorkQueueFilter(name=WorkQueueFilterName(any_=[queue]))
        with self._api(f"read the due runs of the {queue} queues") as api:
            due = api.read_flow_runs(
                work_queue_filter=queues, flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                    # the filter's field is Prefect's own DateTime type; a datetime is what it takes
                    next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(
                        before_=before)),  # type: ignore[arg-type]
                sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC, limit=limit)
            due += api.read_flow_runs(work_queue_filter=queues, flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(
                    any_=[StateType.PENDING, StateType.RUNNING]))), limit=limit * 4)
            ids = sorted({r.deployment_id for r in due if r.deployment_id is not None})
            deployments = {d.id: d for d in api.read_deployments(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)))} if ids else {}
        out = []
        for run in due:
            deployment = deployments.get(run.deployment_id) if run.deployment_id else None
            variables = _merged(dict(deployment.job_variables or {}) if deployment else {},
                                dict(run.job_variables or {}))
            out.append(DueRun(str(run.id), run.name, run.work_pool_name or "",
                              str(run.deployment_version or ""),
                              run.state.type.value if run.state else "UNKNOWN", variables,
                              run.state.timestamp if run.state else None))
        return out

    def claim(self, run_id: str) -> bool:
        with self._api(f"claim flow run {run_id}") as api:
            result: Any = api.set_flow_run_state(UUID(run_id), Pending())
        return str(getattr(result.status, "value", result.status)) == "ACCEPT"

    def runs_now(self, run_ids: Sequence[str]) -> dict[str, RunRef]:
        if not run_ids:
            return {}
        with self._api("read the state of runs") as api:
            runs = api.read_flow_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[UUID(i) for i in run_ids])), limit=len(run_ids))
        return {str(r.id): run_ref(r) for r in runs}

    def mark_cancelled(self, run_ids: Sequence[str], message: str) -> list[str]:
        changed = []
        with self._api("mark runs cancelled") as api:
            for run_id in run_ids:
                api.set_flow_run_state(UUID(run_id), Cancelled(message=message), force=True)
                changed.append(run_id)
        return changed


def _merged(deployment: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The run's job variables over its deployment's; ``env`` merged key by key, as Prefect's
    workers merge them."""
    env = {**dict(deployment.get("env") or {}), **dict(run.get("env") or {})}
    return {**deployment, **run, **({"env": env} if env else {})}
