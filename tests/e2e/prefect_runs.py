"""Starting and watching flow runs in the Prefect server, for assertions."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.states import Scheduled


def client(api: str) -> SyncPrefectClient:
    c = SyncPrefectClient(api)
    c.__enter__()
    return c


def start_run(api: str, module: str, parameters: dict[str, Any] | None = None,
              scheduled: datetime | None = None, deployment: str = "hello") -> str:
    c = client(api)
    try:
        found = c.read_deployment_by_name(f"{module}/{deployment}")  # the flow is named after the module
        state = Scheduled(scheduled_time=scheduled) if scheduled else None
        run = c.create_flow_run_from_deployment(found.id, parameters=parameters or {}, state=state)
        return str(run.id)
    finally:
        c.__exit__(None, None, None)


def state_of(api: str, run_id: str) -> str:
    c = client(api)
    try:
        run = c.read_flow_run(run_id)  # type: ignore[arg-type]
        return run.state.type.value if run.state else "UNKNOWN"
    finally:
        c.__exit__(None, None, None)


def wait_state(api: str, run_id: str, states: set[str], timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        last = state_of(api, run_id)
        if last in states:
            return last
        time.sleep(0.5)
    raise AssertionError(f"flow run {run_id} is {last}, not one of {sorted(states)} after {timeout}s")


def runs_of(api: str, module: str) -> list[Any]:
    """Every flow run of the module's pool: (id, name, queue, state type)."""
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    c = client(api)
    try:
        runs = c.read_flow_runs(work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[module])))
        return [(str(r.id), r.name, r.work_queue_name, r.state.type.value if r.state else None,
                 r.expected_start_time) for r in runs]
    finally:
        c.__exit__(None, None, None)


def printed(api: str, run_id: str, containing: str = "", timeout: float = 20.0) -> list[str]:
    """The flow run's log lines that contain ``containing``, in order. A run's logs reach the
    server in batches, after its final state: wait until at least one such line is there."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    c = client(api)
    try:
        while True:
            logs = c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))  # type: ignore[list-item]
            lines = [log.message for log in sorted(logs, key=lambda log: log.timestamp)]
            found = [line for line in lines if containing in line]
            if found or time.monotonic() > deadline:
                return found if found else lines
            time.sleep(0.5)
    finally:
        c.__exit__(None, None, None)


def everything_of(api: str, module: str) -> str:
    """Every Prefect object of the module's pool as one text: its work pool, deployments,
    flow runs (parameters, job variables, state messages) and their logs."""
    from prefect.client.schemas.filters import (
        LogFilter,
        LogFilterFlowRunId,
        WorkPoolFilter,
        WorkPoolFilterName,
    )

    c = client(api)
    try:
        pool = c.read_work_pool(module)
        pools = WorkPoolFilter(name=WorkPoolFilterName(any_=[module]))
        deployments = c.read_deployments(work_pool_filter=pools)
        runs = c.read_flow_runs(work_pool_filter=pools)
        logs = c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id for r in runs]))) if runs else []
        queues = c.read_work_queues(work_pool_name=module)
        parts = [pool.model_dump_json(), *(q.model_dump_json() for q in queues),
                 *(d.model_dump_json() for d in deployments), *(r.model_dump_json() for r in runs),
                 *(log.model_dump_json() for log in logs)]
        return "\n".join(parts)
    finally:
        c.__exit__(None, None, None)
