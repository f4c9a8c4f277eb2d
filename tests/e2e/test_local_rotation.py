"""End to end on the local backend, through the trigger path: upload a bundle to Azurite, the
function app (run by `deployer dev`) accepts and deploys it, real workers run real flow runs.

Only what needs real processes is here. The same decisions on fakes are unit tests:
the same bundle again is a no-op (tests/unit/test_pipeline.py
test_the_same_bundle_again_is_a_noop_without_build_or_start), a config-only change
(test_config_only_change_starts_a_new_agent_from_the_same_image), an agent that never comes
ONLINE (test_agent_that_never_comes_online_is_removed_after_the_health_timeout), a failed build
(test_build_failure_is_recorded_and_the_old_agent_keeps_serving, with uv failing for real in
tests/integration/test_local_images.py test_a_failed_build_says_what_uv_said_and_leaves_no_venv);
a code-only rollback and a bad code-only bake are tests/unit/test_fast_deploys.py's.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from deployer.models import RunStatus, StageStatus
from tests.e2e import prefect_runs
from tests.e2e.harness import Stack

pytestmark = pytest.mark.timeout(900)

#: a change of dependencies builds an image and rotates; a change of config rotates with the
#: same image (a change of code alone does neither: tests/e2e/test_fast_deploys.py)
DEPS_CHANGE = {"requirements.txt": "prefect>=3.4,<4\n# revision two\n"}
CONFIG_CHANGE = {".env": "GREETING=bonjour\nAPI_TOKEN=s3cr3t-token-value\n"}


def deployed(stack: Stack, changes: dict | None = None) -> str:  # type: ignore[type-arg]
    record = stack.deploy(changes)
    assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
    return stack.current_agent()


def test_upload_brings_an_agent_online_and_a_flow_run_completes(stack: Stack) -> None:
    stack.start_host()
    agent = deployed(stack)
    assert stack.running_agents() == [agent] and agent in stack.online()
    run_id = prefect_runs.start_run(stack.prefect_api, stack.name)
    assert prefect_runs.wait_state(stack.prefect_api, run_id, {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED"


def test_a_dependency_change_builds_and_rotates_with_an_online_worker_at_every_poll(stack: Stack) -> None:
    stack.start_host()
    old = deployed(stack)
    serving: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            alive = set(stack.running_agents())
            serving.append(len(alive & stack.online()))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        record = stack.deploy(DEPS_CHANGE)
    finally:
        stop.set()
        watcher.join()
    assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
    assert record.stage("build").status is StageStatus.DONE  # type: ignore[union-attr]
    assert record.stage("plan").detail["path"] == "dependencies"  # type: ignore[union-attr]
    new = stack.current_agent()
    assert new != old
    assert stack.running_agents() == [new]
    assert len(serving) > 10 and min(serving) >= 1, serving
    run_id = prefect_runs.start_run(stack.prefect_api, stack.name)
    assert prefect_runs.wait_state(stack.prefect_api, run_id, {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED"


def test_a_long_run_on_the_old_agent_completes_while_the_new_revision_serves(stack: Stack) -> None:
    stack.start_host()
    old = deployed(stack)
    long_id = prefect_runs.start_run(stack.prefect_api, stack.name, {"seconds": 40})
    prefect_runs.wait_state(stack.prefect_api, long_id, {"RUNNING"}, timeout=60)
    uploaded = stack.upload(CONFIG_CHANGE)
    settled = stack.wait_request(uploaded, until=lambda r: r.status.settled)
    assert settled.status is RunStatus.DRAINING, (settled.status, settled.error)
    new = stack.current_agent()
    assert new != old and set(stack.running_agents()) == {old, new}
    # the new revision serves new runs meanwhile
    fresh = prefect_runs.start_run(stack.prefect_api, stack.name)
    assert prefect_runs.wait_state(stack.prefect_api, fresh, {"COMPLETED", "FAILED", "CRASHED"}) == "COMPLETED"
    assert [r[2] for r in prefect_runs.runs_of(stack.prefect_api, stack.name) if r[0] == fresh] == [new]
    status = json.loads(stack.cli("status", stack.name, "--json").stdout)["modules"][0]
    assert {a["agent"]["name"]: a["role"] for a in status["agents"]} == {old: "draining", new: "current"}
    assert [r["status"] for r in status["active"]] == ["draining"]
    record = stack.wait_request(uploaded)
    assert record.status is RunStatus.SUCCEEDED
    assert record.stage(f"drain {old}").detail["crashed"] == []  # type: ignore[union-attr]
    # retiring the old agent kills its flow-run processes: COMPLETED means the drain waited
    assert prefect_runs.state_of(stack.prefect_api, long_id) == "COMPLETED"
    assert stack.running_agents() == [new]


def test_scheduled_runs_follow_the_deployment_to_the_new_agent(stack: Stack) -> None:
    stack.start_host()
    old = deployed(stack)
    later = datetime.now(UTC) + timedelta(hours=2)
    prefect_runs.start_run(stack.prefect_api, stack.name, {"seconds": 1}, scheduled=later)
    [(old_id, name, queue, _, _)] = [r for r in prefect_runs.runs_of(stack.prefect_api, stack.name)
                                         if r[3] == "SCHEDULED"]
    assert queue == old
    new = deployed(stack, CONFIG_CHANGE)
    scheduled = [r for r in prefect_runs.runs_of(stack.prefect_api, stack.name) if r[3] == "SCHEDULED"]
    assert [(r[1], r[2]) for r in scheduled] == [(name, new)]
    assert scheduled[0][0] != old_id and abs((scheduled[0][4] - later).total_seconds()) < 1


def _worker_pids(module: str) -> set[int]:
    """Every worker process of the module's pool on this machine (behind its preflight, the
    worker's arguments are in the preflight's JSON argument). An agent's warm checker is a fork
    of it (the same command line) and is counted with it, not apart; one whose agent is gone
    (parent no longer a worker) counts as a worker left behind."""
    found: dict[int, int] = {}
    for process in psutil.process_iter(["cmdline", "ppid"]):
        cmdline = process.info["cmdline"] or []
        if any(f'"--pool","{module}"' in arg for arg in cmdline) or \
                ("worker" in cmdline and "--pool" in cmdline and module in cmdline):
            found[process.pid] = process.info["ppid"]
    return {pid for pid, parent in found.items() if parent not in found}


@pytest.mark.parametrize("kill_in", ["build", "start-agent", "register", "commit"])
def test_a_host_killed_in_a_step_converges_with_one_build_one_agent_and_no_leftovers(
        stack: Stack, kill_in: str) -> None:
    stack.start_host(lease_seconds=5)
    deployed(stack)
    change = {"requirements.txt": "prefect>=3.4,<4\nsix\n"} if kill_in == "build" else DEPS_CHANGE
    long_id = ""
    if kill_in == "commit":  # killed while the old agent drains a run
        long_id = prefect_runs.start_run(stack.prefect_api, stack.name, {"seconds": 25})
        prefect_runs.wait_state(stack.prefect_api, long_id, {"RUNNING"}, timeout=60)
    uploaded = stack.upload(change)

    def reached(record) -> bool:  # type: ignore[no-untyped-def]
        stage = record.stage(kill_in)
        if kill_in == "build":  # in the middle of the build: started, not finished
            return stage is not None and bool(stage.detail.get("build_id"))
        return stage is not None and stage.status is StageStatus.DONE

    stack.wait_record(uploaded.request_id, until=reached)
    stack.stop_host(kill=True)  # the host dies mid-request; agents and builds live on
    stack.start_host(lease_seconds=5)
    record = stack.wait_request(uploaded)
    assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
    current = stack.current_agent()
    assert stack.running_agents() == [current]
    assert [a.name for a in stack.agents()] == [current]  # no orphans, not even stopped records
    state = stack.services.state.module(stack.name).value  # type: ignore[union-attr]
    assert state.current.id == uploaded.revision.id and state.owner is None and state.draining == ()  # type: ignore[union-attr]
    assert stack.host_log(tail=None).count("image.build_started") == 2  # the first deploy's and this one's
    assert _worker_pids(stack.name) == {int(stack.agents()[0].detail.split()[-1])}
    leftovers = [p for p in (stack.work / "tmp").rglob(".env")]
    assert leftovers == [], leftovers
    if long_id:
        assert prefect_runs.state_of(stack.prefect_api, long_id) == "COMPLETED"


def test_storage_down_for_20_seconds_during_a_wait_the_request_resumes(prefect_api: str, tmp_path, venv_store) -> None:  # type: ignore[no-untyped-def]
    from deployer.devservices import AzuriteServer

    server = AzuriteServer(tmp_path / "azurite")
    endpoints = server.start()
    stack = Stack(endpoints.connection_string, prefect_api, tmp_path, venvs=venv_store)
    try:
        stack.start_host()
        old = deployed(stack)
        long_id = prefect_runs.start_run(stack.prefect_api, stack.name, {"seconds": 30})
        prefect_runs.wait_state(stack.prefect_api, long_id, {"RUNNING"}, timeout=60)
        uploaded = stack.upload(CONFIG_CHANGE)
        stack.wait_request(uploaded, until=lambda r: r.status is RunStatus.DRAINING)  # a wait step
        server.stop()
        time.sleep(20)
        server.start()
        record = stack.wait_request(uploaded)
        assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
        assert prefect_runs.state_of(stack.prefect_api, long_id) == "COMPLETED"
        assert stack.running_agents() == [stack.current_agent()] != [old]
        assert stack.poisoned() == []
    finally:
        stack.cleanup()
        server.stop()
