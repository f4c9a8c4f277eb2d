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
