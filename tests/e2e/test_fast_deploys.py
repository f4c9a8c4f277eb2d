"""Fast deploys on this machine, through the trigger path: a code-only change is live with no
build and no new agent (the serving worker's next run pulls the new code), a run in flight keeps
the code it started with, a rollback across it is a re-registration, and no secret reaches Prefect."""

from __future__ import annotations

import pytest

from deployer.models import RunStatus
from tests.e2e import prefect_runs
from tests.e2e.harness import FLOW, Stack

pytestmark = pytest.mark.timeout(900)

CANARY = "canary-5f1e0c9d-never-in-prefect"
ENV = f"GREETING=hi\nAPI_TOKEN={CANARY}\n"
NEW_CODE = {"flow.py": FLOW.replace('print("greeting"', 'print("greeting v2"'), ".env": ENV}
FINAL = {"COMPLETED", "FAILED", "CRASHED"}


def run_and_print(stack: Stack, parameters: dict | None = None) -> list[str]:  # type: ignore[type-arg]
    run_id = prefect_runs.start_run(stack.prefect_api, stack.name, parameters)
    assert prefect_runs.wait_state(stack.prefect_api, run_id, FINAL) == "COMPLETED"
    return prefect_runs.printed(stack.prefect_api, run_id, "greeting")


def test_a_code_only_change_is_live_on_the_same_agent_and_a_run_in_flight_keeps_its_code(stack: Stack) -> None:
    stack.start_host()
    first = stack.deploy({".env": ENV})
    assert first.status is RunStatus.SUCCEEDED, (first.error, stack.host_log())
    agent = stack.current_agent()
    long_id = prefect_runs.start_run(stack.prefect_api, stack.name, {"seconds": 12})
    prefect_runs.wait_state(stack.prefect_api, long_id, {"RUNNING"}, timeout=60)

    record = stack.deploy(NEW_CODE)
    assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
    plan = record.stage("plan").detail  # type: ignore[union-attr]
    assert (plan["path"], plan["changed"]) == ("code", ["code"])
    assert [s.name for s in record.stages if s.name in ("build", "start-agent", "wait-online")] == []
    assert stack.current_agent() == agent and stack.running_agents() == [agent]
    assert stack.host_log(tail=None).count("image.build_started") == 1  # the first deploy's
    # proven by the serving agent's warm checker (the real one, in its venv): no check run
    check = record.stage("check-code")
    assert check is not None and check.detail["run_id"].startswith("check-") and "fallback" not in check.detail

    assert run_and_print(stack) == ["greeting v2 hi"]  # the next run: the new code
    assert prefect_runs.wait_state(stack.prefect_api, long_id, FINAL) == "COMPLETED"
    assert prefect_runs.printed(stack.prefect_api, long_id, "greeting") == ["greeting hi"]  # in flight when the change landed: the old code

    key = dict(p.split("=", 1) for p in stack.azurite_connection.split(";") if "=" in p)["AccountKey"]
    everything = prefect_runs.everything_of(stack.prefect_api, stack.name)
    assert "/code/" in everything  # the deployments do pull from the code store ...
    assert CANARY not in everything and key not in everything  # ... and hold no secret
