"""Flow runs on the Prefect API: re-creating one (to move it to another queue, or to give it the
version of the code it will run), finding the run that replaced one, and the domain's view of one."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Scheduled

from deployer.ports.orchestrator import RunRef


def recreate(api: SyncPrefectClient, run: Any, queue: str | None, key: str) -> str:
    """The run again, from its deployment as it is registered now (its version, its pull
    steps), with the same name, parameters, tags and scheduled time, on ``queue``; the old one
    deleted. Returns the new run's id."""
    when = run.next_scheduled_start_time or run.expected_start_time
    new = api.create_flow_run_from_deployment(
        run.deployment_id, parameters=run.parameters, name=run.name, tags=run.tags,
        state=Scheduled(scheduled_time=when), idempotency_key=key, work_queue_name=queue,
        job_variables=run.job_variables)
    api.delete_flow_run(run.id)
    return str(new.id)


def relabel(api: SyncPrefectClient, pool: str, queue: str, deployment_ids: list[UUID],
            revision_id: str) -> list[tuple[str, str]]:
    """A run carries the version its deployment had when it was created, but pulls the code its
    deployment points at when it starts: runs not started yet (manual ones, late ones; Prefect
    itself re-creates the future auto-scheduled ones) that carry another version are re-created
    at ``revision_id`` on the deployments' ``queue``, so that a run's version is the code it
    runs, and the agent that runs it has that revision's environment."""
    if not deployment_ids:
        return []
    runs = api.read_flow_runs(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
    return [(str(run.id), recreate(api, run, queue, f"relabel:{run.id}:{revision_id}"))
            for run in runs
            if not run.run_count and (run.deployment_version or "") != revision_id]


def successor(api: SyncPrefectClient, run: RunRef) -> RunRef | None:
    """The newest other run of ``run``'s deployment with its name: ``recreate`` keeps both."""
    if not run.deployment:
        return None
    found = api.read_flow_runs(
        flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run.name])),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(run.deployment)])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=5)
    others = [r for r in found if str(r.id) != run.id]
    return run_ref(others[0]) if others else None


def run_ref(run: Any) -> RunRef:
    return RunRef(str(run.id), run.name, run.state.type.value if run.state else "UNKNOWN",
                  str(run.deployment_id or ""), str(getattr(run, "deployment_version", "") or ""),
                  str(run.state.message or "") if run.state else "")
