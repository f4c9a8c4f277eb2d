"""The bake window on real workers, through the trigger path and the CLI as a user runs it: a
run that waits while a bake rolls back runs the previous code and says so (its version), and a
module removed during its bake is removed, not "baking" for the rest of the window."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.states import Scheduled

from deployer.models import RunStatus
from tests.e2e import prefect_runs
from tests.e2e.harness import FLOW, Stack

pytestmark = pytest.mark.timeout(900)

BAKE = {"DEPLOYER_BAKE_SECONDS": "300", "DEPLOYER_BAKE_RUNS": "3"}
ENV: dict[str, str | bytes | None] = {".env": "GREETING=hi\n"}
BROKEN = FLOW.replace("    time.sleep(seconds)\n",
                      "    time.sleep(seconds)\n    raise RuntimeError('revision two is broken')\n")


def baking(stack: Stack, changes: dict[str, str | bytes | None]) -> tuple[str, str]:
    """Upload a code-only change and wait until it serves, in its bake window: (request, revision)."""
    uploaded = stack.upload(changes)
    record = stack.wait_request(uploaded, until=lambda r: r.status.settled)
    assert record.status is RunStatus.BAKING and record.revision is not None, (record.error, stack.host_log())
    assert record.stage("plan").detail["path"] == "code"  # type: ignore[union-attr]
    return uploaded.request_id, record.revision.id


def test_a_run_waiting_when_the_bake_rolls_back_runs_the_previous_code_and_is_labelled_so(stack: Stack) -> None:
    stack.extra.update(BAKE)
    stack.start_host()
    first = stack.deploy(ENV)
    assert first.status is RunStatus.SUCCEEDED and first.revision is not None, (first.error, stack.host_log())
    request_id, bad = baking(stack, {"flow.py": BROKEN, **ENV})
    # a run made now, to start in an hour, is made at the revision being baked ...
    waiting_id = prefect_runs.start_run(stack.prefect_api, stack.name,
                                        scheduled=datetime.now(UTC) + timedelta(hours=1))
    with SyncPrefectClient(stack.prefect_api) as client:
        waiting = client.read_flow_run(uuid.UUID(waiting_id))
    assert waiting.deployment_version == bad

    # ... `deployer run --watch` runs the deployment now, on the right API, and follows it
    ran = stack.cli("run", f"{stack.name}/hello", "--watch", "--timeout", "180")
    assert ran.returncode == 1, (ran.stdout, ran.stderr)
    assert bad in ran.stdout and "PENDING" in ran.stdout and "revision two is broken" in ran.stdout
    assert "FAILED" in ran.stderr

    record = stack.wait_record(request_id)  # that failure ends the bake: the first revision is back
    assert record.status is RunStatus.ROLLED_BACK, (record.error, stack.host_log())
    # the waiting run now carries the version of the code it will pull: the first revision's
    with SyncPrefectClient(stack.prefect_api) as client:
        [again] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[waiting.name])))
        assert again.deployment_version == first.revision.id
        again_id = str(again.id)  # and it runs that code, now
        client.set_flow_run_state(uuid.UUID(again_id), Scheduled(scheduled_time=datetime.now(UTC)), force=True)
    assert prefect_runs.wait_state(stack.prefect_api, again_id, {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED"
    assert prefect_runs.printed(stack.prefect_api, again_id, "greeting") == ["greeting hi"]


def test_a_module_removed_in_its_bake_window_is_removed_not_baking(stack: Stack) -> None:
    stack.extra.update(BAKE)
    stack.start_host()
    first = stack.deploy(ENV)
    assert first.status is RunStatus.SUCCEEDED, (first.error, stack.host_log())
    request_id, _ = baking(stack, {"flow.py": FLOW.replace("greeting", "greeting v2"), **ENV})

    removed = stack.cli("remove", stack.name)
    assert removed.returncode == 0, removed.stderr
    record = stack.wait_record(request_id, timeout=120)
    assert record.status is RunStatus.REMOVED, (record.status, stack.host_log())
    status = json.loads(stack.cli("status", stack.name, "--json").stdout)
    [module] = status["modules"]
    assert module.get("baking") is None and not stack.running_agents(), module
    history = json.loads(stack.cli("history", stack.name, "--json").stdout)
    assert history["current_request"] not in (first.request_id, request_id)  # no revision is current
    assert [e["outcome"] for e in history["entries"] if e["request_id"] == request_id] == ["removed"], history
