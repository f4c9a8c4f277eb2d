"""The orchestrator port's contract: the same cases against the fake the unit tests use and the
real adapter on a real Prefect server, so that the fake stays honest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployer.adapters.prefect_orchestrator import PrefectOrchestrator, _pool_filter
from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.errors import BundleInvalid, NotFound, UsageError
from deployer.ports.images import Image
from deployer.ports.orchestrator import SMOKE_TAG, Orchestrator
from tests.fakes.platform import FakeOrchestrator

WORK = Image("img", "/work").pull_steps()
Finish = Callable[[str, str], None]  # (run id, final state)


def spec(flow: str, name: str = "hello", **config: Any) -> DeploymentSpec:
    return DeploymentSpec(name=name, entrypoint="flow.py:hello", line=3, config={"name": name, **config},
                          flow_name=flow, parameter_schema={})


@pytest.fixture(params=["fake", "prefect"])
def port(request: pytest.FixtureRequest) -> Iterator[tuple[Orchestrator, Finish]]:
    if request.param == "fake":
        fake = FakeOrchestrator()
        fake.run_seconds = 3600.0  # runs end only when the test says so, as on a server without workers

        def finish_fake(run_id: str, state: str) -> None:
            fake.runs[run_id].state = state

        yield fake, finish_fake
        return
    api = request.getfixturevalue("prefect_api")
    real = PrefectOrchestrator(api)

    def finish_real(run_id: str, state: str) -> None:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.states import Completed, Failed, Running

        with SyncPrefectClient(api) as client:
            client.set_flow_run_state(uuid.UUID(run_id), Running(), force=True)
            client.set_flow_run_state(uuid.UUID(run_id), Completed() if state == "COMPLETED" else Failed(),
                                      force=True)

    try:
        yield real, finish_real
    finally:
        real.close()


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"pool-{tag}", f"flow-{tag}"


def test_a_new_queue_without_a_worker_is_not_ready_and_a_paused_one_says_so(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, _ = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    readiness = orchestrator.readiness(pool, "q1", [spec(flow)])
    assert readiness.queue == "NOT_READY" and readiness.deployments == {"hello": "NOT_READY"}
    assert not readiness.ready
    orchestrator.pause_queue(pool, "q1")
    assert orchestrator.readiness(pool, "q1", [spec(flow)]).queue == "PAUSED"
    orchestrator.resume_queue(pool, "q1")
    assert orchestrator.readiness(pool, "q1", [spec(flow)]).queue == "NOT_READY"
    orchestrator.ensure_queue(pool, "q2")
    assert orchestrator.readiness(pool, "q2", [spec(flow)]).deployments == {"hello": "elsewhere"}
    assert orchestrator.readiness(pool, "nope", [spec(flow, "other")]) .queue == "missing"


def test_a_run_started_with_an_idempotency_key_twice_is_one_run(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, _ = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    first = orchestrator.start_run(flow, "hello", {}, idempotency_key="smoke:r1:hello", tags=[SMOKE_TAG])
    second = orchestrator.start_run(flow, "hello", {}, idempotency_key="smoke:r1:hello", tags=[SMOKE_TAG])
    assert first.id == second.id and first.version == "rev-1"
    assert orchestrator.start_run(flow, "hello", {}).id != first.id


def test_finished_runs_are_the_queues_final_runs_since_a_time_without_smoke_runs(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, finish = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    since = datetime.now(UTC) - timedelta(seconds=5)
    ok = orchestrator.start_run(flow, "hello", {})
    bad = orchestrator.start_run(flow, "hello", {})
    smoke = orchestrator.start_run(flow, "hello", {}, tags=[SMOKE_TAG])
    going = orchestrator.start_run(flow, "hello", {})
    for run_id, state in ((ok.id, "COMPLETED"), (bad.id, "FAILED"), (smoke.id, "COMPLETED")):
        finish(run_id, state)
    found = {r.id: r.state for r in orchestrator.finished_runs(pool, "q1", since)}
    assert found == {ok.id: "COMPLETED", bad.id: "FAILED"}
    assert going.id not in found
    assert orchestrator.finished_runs(pool, "q1", datetime.now(UTC) + timedelta(hours=1)) == []


def test_a_deployment_name_another_pool_owns_is_a_conflict(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, _ = port
    pool, flow = names()
    other = f"{pool}-b"
    for p in (pool, other):
        orchestrator.ensure_pool(p)
        orchestrator.ensure_queue(p, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    [problem] = orchestrator.conflicts(other, [spec(flow)])
    assert problem.file == "prefect.yaml" and problem.line == 3 and repr(pool) in problem.message
    assert orchestrator.conflicts(pool, [spec(flow)]) == []


def test_a_deployment_prefect_refuses_names_the_deployment_and_its_line_never_a_pydantic_dump(prefect_api: str) -> None:
    orchestrator = PrefectOrchestrator(prefect_api)
    pool, flow = names()
    try:
        orchestrator.ensure_pool(pool)
        orchestrator.ensure_queue(pool, "q1")
        broken = replace(spec(flow, schedules=[{"cron": "61 * * * *"}]), line=7)
        with pytest.raises(BundleInvalid) as info:
            orchestrator.register(pool, "q1", [broken], WORK, "rev-1")
        [problem] = info.value.problems
        assert (problem.file, problem.line) == ("prefect.yaml", 7)
        assert problem.message.startswith(f"deployment 'hello' of module {pool}: ")
        assert "Invalid cron string" in problem.message and "pydantic" not in problem.message
    finally:
        orchestrator.close()


def test_a_code_check_is_one_run_per_key_on_the_queue_never_counted_as_a_real_run(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, finish = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    since = datetime.now(UTC) - timedelta(seconds=5)
    first = orchestrator.start_code_check(pool, "q1", WORK, [("flow.py:hello", flow)], idempotency_key="check:r2")
    again = orchestrator.start_code_check(pool, "q1", WORK, [("flow.py:hello", flow)], idempotency_key="check:r2")
    assert first.id == again.id
    finish(first.id, "COMPLETED")
    assert orchestrator.run_status(first.id).state == "COMPLETED"
    assert orchestrator.finished_runs(pool, "q1", since) == []
    orchestrator.finish_code_check(pool)
    orchestrator.finish_code_check(pool)  # a second clean-up of a check already gone is no error
    assert orchestrator.readiness(pool, "q1", [spec(flow)]).deployments == {"hello": "NOT_READY"}


def test_versions_name_each_deployment_of_the_pool_and_the_revision_it_is_registered_at(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, _ = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    assert orchestrator.versions(pool) == {}
    orchestrator.register(pool, "q1", [spec(flow), spec(flow, "other")], WORK, "rev-1")
    orchestrator.register(pool, "q1", [spec(flow), spec(flow, "other")], WORK, "rev-2")
    assert orchestrator.versions(pool) == {f"{flow}/hello": "rev-2", f"{flow}/other": "rev-2"}


def test_a_deployment_name_prefect_refuses_is_a_refusal_that_is_never_retried(prefect_api: str) -> None:
    """Validate refuses such names first; should one reach Prefect anyway, its refusal is final
    (one attempt, not five ending in internal_error)."""
    orchestrator = PrefectOrchestrator(prefect_api)
    pool, flow = names()
    try:
        orchestrator.ensure_pool(pool)
        orchestrator.ensure_queue(pool, "q1")
        with pytest.raises(BundleInvalid) as refused:
            orchestrator.register(pool, "q1", [spec(flow, "a/b")], WORK, "rev-1")
        assert not refused.value.transient and "'a/b'" in str(refused.value) and "Prefect refuses it" in str(refused.value)
        assert orchestrator.versions(pool) == {}
    finally:
        orchestrator.close()


def test_a_deployment_without_a_description_has_none_not_the_text_none(prefect_api: str) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    orchestrator = PrefectOrchestrator(prefect_api)
    pool, flow = names()
    try:
        orchestrator.ensure_pool(pool)
        orchestrator.ensure_queue(pool, "q1")
        orchestrator.register(pool, "q1", [spec(flow), spec(flow, "told", description="says hi")], WORK, "rev-1")
        with SyncPrefectClient(prefect_api) as client:
            assert client.read_deployment_by_name(f"{flow}/hello").description in ("", None)
            assert client.read_deployment_by_name(f"{flow}/told").description == "says hi"
    finally:
        orchestrator.close()


@pytest.mark.parametrize(("status", "transient"), [(422, False), (400, False), (404, False), (429, True), (503, True), (401, True)])
def test_prefect_refusing_a_request_is_final_and_its_faults_are_retried(status: int, transient: bool) -> None:
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    from deployer.adapters.prefect_errors import translated
    from deployer.errors import UpstreamError

    request = httpx.Request("POST", "http://prefect/api/deployments/")
    response = httpx.Response(status, json={"detail": [{"loc": ["body", "name"], "msg": "bad name"}]}, request=request)
    with pytest.raises(UpstreamError) as caught, translated("register", "http://prefect/api"):
        raise PrefectHTTPStatusError.from_httpx_error(httpx.HTTPStatusError("x", request=request, response=response))
    assert caught.value.transient is transient


def write_log(orchestrator: Orchestrator, run_id: str, message: str) -> None:
    """A line the run logs, as its flow would: through Prefect's API, or into the fake."""
    if isinstance(orchestrator, FakeOrchestrator):
        orchestrator.log(run_id, message)
        return
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import LogCreate

    assert isinstance(orchestrator, PrefectOrchestrator)
    with SyncPrefectClient(orchestrator._api_url) as client:
        client.create_logs([LogCreate(name="prefect.flow_runs", level=20, message=message,
                                      timestamp=datetime.now(UTC), flow_run_id=uuid.UUID(run_id))])


def test_a_runs_log_lines_come_oldest_first_from_an_offset(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, _ = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    run = orchestrator.start_run(flow, "hello", {})
    other = orchestrator.start_run(flow, "hello", {})
    assert orchestrator.run_logs(run.id) == []
    for n in range(3):
        write_log(orchestrator, run.id, f"line {n}")
        time.sleep(0.01)  # each stamped apart
    write_log(orchestrator, other.id, "not this run's")
    lines = orchestrator.run_logs(run.id)
    assert [(line.level, line.message) for line in lines] == [("INFO", f"line {n}") for n in range(3)]
    assert [line.message for line in orchestrator.run_logs(run.id, lines[2].at)] == ["line 2"]
    assert len({line.id for line in lines}) == 3


def test_a_parameter_the_flow_does_not_take_is_refused_unless_it_takes_kwargs(port) -> None:  # type: ignore[no-untyped-def]
    orchestrator, _ = port
    pool, flow = names()
    schema = {"title": "Parameters", "type": "object", "definitions": {},
              "properties": {"name": {"title": "name", "position": 0, "type": "string", "default": "x"}}}
    strict = replace(spec(flow), parameter_schema=schema)
    loose = replace(spec(flow, "loose"), parameter_schema=schema, accepts_kwargs=True)
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [strict, loose], WORK, "rev-1")
    with pytest.raises(UsageError, match="takes no parameter 'nmae'") as refused:
        orchestrator.start_run(flow, "hello", {"nmae": "Ada"})
    assert "name" in (refused.value.hint or "")
    assert orchestrator.start_run(flow, "hello", {"name": "Ada"}).state
    assert orchestrator.start_run(flow, "loose", {"anything": 1}).state


def test_a_run_not_started_when_its_deployment_moves_to_another_revision_is_relabelled(port) -> None:  # type: ignore[no-untyped-def]
    """A run pulls the code its deployment points at when it starts: one created at rev-1 that
    has not started when the deployment is registered at rev-2 is re-created at rev-2 (same name,
    same queue); one already going keeps its label, as it keeps its code."""
    orchestrator, _ = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, "q1")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-1")
    waiting = orchestrator.start_run(flow, "hello", {"name": "x"})
    going = orchestrator.start_run(flow, "hello", {})
    if isinstance(orchestrator, FakeOrchestrator):  # the fake starts runs at once; these wait
        orchestrator.runs[waiting.id].state = "SCHEDULED"
    else:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.states import Running

        with SyncPrefectClient(orchestrator._api_url) as client:
            client.set_flow_run_state(uuid.UUID(going.id), Running(), force=True)
    assert orchestrator.run_status(waiting.id).version == "rev-1"
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-2")
    assert orchestrator.run_status(going.id).version == "rev-1"
    with pytest.raises(NotFound):  # re-created: a new id
        orchestrator.run_status(waiting.id)
    assert orchestrator.queues(pool)["q1"] == 2  # the re-created run waits in the same queue
    assert waiting_runs(orchestrator, pool) == [(waiting.name, "rev-2")]
    following = orchestrator.successor(orchestrator.run_status(going.id))
    assert following is None  # the run going on was not re-created: no other run of its name
    replaced = orchestrator.successor(waiting)  # what a watch of the first one follows
    assert replaced is not None and (replaced.name, replaced.version) == (waiting.name, "rev-2")
    orchestrator.register(pool, "q1", [spec(flow)], WORK, "rev-2")  # the same revision again
    assert waiting_runs(orchestrator, pool) == [(waiting.name, "rev-2")]
    orchestrator.ensure_queue(pool, "q2")  # a new agent's queue: the waiting run goes with it
    orchestrator.register(pool, "q2", [spec(flow)], WORK, "rev-3")
    assert waiting_runs(orchestrator, pool) == [(waiting.name, "rev-3")]
    again = orchestrator.successor(replaced)  # re-created twice: followed from the last one seen
    assert again is not None and again.version == "rev-3" and again.id != replaced.id
    assert (orchestrator.queues(pool)["q1"], orchestrator.queues(pool)["q2"]) == (1, 1)  # the going one stays


def waiting_runs(orchestrator: Orchestrator, pool: str) -> list[tuple[str, str]]:
    """(name, version) of the pool's runs not started yet."""
    if isinstance(orchestrator, FakeOrchestrator):
        return [(r.name, r.version) for r in orchestrator.runs.values() if r.state == "SCHEDULED"]
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType

    assert isinstance(orchestrator, PrefectOrchestrator)
    with SyncPrefectClient(orchestrator._api_url) as client:
        runs = client.read_flow_runs(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
    return [(r.name, r.deployment_version or "") for r in runs]


def test_the_dispatchers_calls_find_due_runs_of_every_per_run_queue_claim_each_once_and_read_them(port) -> None:  # type: ignore[no-untyped-def]
    """``isolation: run``: no worker polls the per-run queue; the dispatcher lists its due runs
    (with the image and sizes their deployment's job variables give), claims each (once), reads
    their states in one call and ends a cancelled one."""
    from deployer.models import PER_RUN_QUEUE
    from deployer.run_limits import RUN_MEMORY_ENV

    orchestrator, _ = port
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, PER_RUN_QUEUE)
    orchestrator.ensure_queue(pool, "q1")
    sized = spec(flow, work_pool={"job_variables": {"cpu": 2, "memory": 1, "env": {"A": "b"}}})
    orchestrator.register(pool, PER_RUN_QUEUE, [sized], WORK, "rev-1", image="registry/demo:1")
    run = orchestrator.start_run(flow, "hello", {})
    assert orchestrator.run_status(run.id).state == "SCHEDULED"  # nobody takes it on its own

    def due() -> dict[str, Any]:
        found = orchestrator.due_runs(PER_RUN_QUEUE, datetime.now(UTC) + timedelta(seconds=10), [pool])
        assert {r.pool for r in found} <= {pool}  # only the pools asked for
        return {r.id: r for r in found}

    [found] = due().values()
    assert (found.id, found.state, found.version) == (run.id, "SCHEDULED", "rev-1")
    variables = found.job_variables
    assert (variables["image"], variables["cpu"], variables["memory"]) == ("registry/demo:1", 2, 1)
    assert variables["env"] == {"A": "b", RUN_MEMORY_ENV: str(1024**3)}
    assert not found.paused and found.run_count == 0 and found.infrastructure == ""
    assert orchestrator.claim(run.id, "agent-run-x") is True
    assert orchestrator.claim(run.id, "agent-run-y") is False  # taken: a second dispatcher leaves it
    [pending] = due().values()
    assert pending.state == "PENDING" and pending.since is not None
    assert pending.infrastructure == "agent-run-x"  # whose it is
    assert orchestrator.runs_now([run.id])[run.id].state == "PENDING"
    assert orchestrator.runs_now([]) == {}
    orchestrator.mark_cancelled([run.id], "cancelled: the deployer stopped its container")
    assert orchestrator.runs_now([run.id])[run.id].state == "CANCELLED" and due() == {}
    # the deployment moved to an agent's queue: its runs are the worker's, not the dispatcher's
    orchestrator.register(pool, "q1", [sized], WORK, "rev-2")
    orchestrator.start_run(flow, "hello", {})
    assert due() == {}


def test_a_run_scheduled_later_is_not_due_until_its_time_comes_near(prefect_api: str) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.states import Scheduled

    from deployer.models import PER_RUN_QUEUE

    orchestrator = PrefectOrchestrator(prefect_api)
    pool, flow = names()
    orchestrator.ensure_pool(pool)
    orchestrator.ensure_queue(pool, PER_RUN_QUEUE)
    orchestrator.register(pool, PER_RUN_QUEUE, [spec(flow)], WORK, "rev-1", image="i")
    now = datetime.now(UTC)
    with SyncPrefectClient(prefect_api) as client:
        [deployment] = client.read_deployments(work_pool_filter=_pool_filter(pool))
        later = client.create_flow_run_from_deployment(
            deployment.id, state=Scheduled(scheduled_time=now + timedelta(hours=1)))
    try:
        assert str(later.id) not in {r.id for r in orchestrator.due_runs(
            PER_RUN_QUEUE, now + timedelta(seconds=10), [pool])}
        assert str(later.id) in {r.id for r in orchestrator.due_runs(
            PER_RUN_QUEUE, now + timedelta(hours=2), [pool])}
        assert orchestrator.due_runs(PER_RUN_QUEUE, now + timedelta(hours=2), ["another-pool"]) == []
        orchestrator.pause_queue(pool, PER_RUN_QUEUE)  # paused in the Prefect UI: said
        assert [r.paused for r in orchestrator.due_runs(PER_RUN_QUEUE, now + timedelta(hours=2), [pool])] == [True]
    finally:
        orchestrator.close()
