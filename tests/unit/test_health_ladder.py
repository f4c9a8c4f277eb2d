"""A broken revision never replaces a working one: the health ladder before cutover (flows load,
READY, smoke runs) and the bake window after it, with its automatic rollback."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from deployer import codec
from deployer.models import RunStatus, StageStatus, Trigger
from deployer.ports.orchestrator import SMOKE_TAG
from tests.fakes.notifier import Recorder, notify_into
from tests.fakes.platform import transient
from tests.unit.pipeline_world import World

CHANGE = {"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 2\n"}
SMOKE_YAML = """name: demo
deployments:
  - name: hello
    entrypoint: flow.py:hello
    deployer:
      smoke:
        parameters: {name: smoke}
"""


def broken(spec):  # type: ignore[no-untyped-def]
    return [{"deployment": name, "ok": False, "entrypoint": ep, "exception": "ModuleNotFoundError",
             "message": "No module named 'pandas' (API_TOKEN=s3cr3t-token-value)", "file": "flow.py", "line": 1}
            for name, ep in spec.entrypoints]


def serving(world: World) -> str:
    old = world.current_agent()
    assert world.runtime.running("demo") == [old]
    assert world.orchestrator.deployments[("demo", "hello")]["queue"] == old
    return old


def test_a_flow_that_does_not_load_in_its_environment_never_reaches_cutover(world: World) -> None:
    world.run(world.request())
    old = serving(world)
    world.runtime.preflight = broken
    record = world.run(world.request(CHANGE))
    assert record.status is RunStatus.FAILED and record.error["code"] == "bundle_invalid"  # type: ignore[index]
    [problem] = record.error["problems"]  # type: ignore[index]
    assert (problem["file"], problem["line"]) == ("flow.py", 1)
    assert "deployment 'hello': ModuleNotFoundError: No module named 'pandas'" in problem["message"]
    assert "in the revision's own environment" in problem["message"]
    assert "s3cr3t-token-value" not in codec.dumps(record).decode()  # what user code printed is redacted
    assert record.stage("check-entrypoints").status is StageStatus.FAILED  # type: ignore[union-attr]
    assert record.stage("register") is None
    assert serving(world) == old and world.current_agent() == old


def test_an_agent_that_never_reports_whether_its_flows_load_is_removed(world: World) -> None:
    world.run(world.request())
    old = serving(world)
    world.runtime.logs = lambda name, tail=50: "nothing useful"  # type: ignore[method-assign,assignment]
    record = world.run(world.request(CHANGE))
    assert record.status is RunStatus.FAILED and "did not report within 60s whether its flows load" in record.error["message"]  # type: ignore[index]
    assert serving(world) == old


def test_queue_never_ready_after_registration_hands_the_deployments_back(world: World) -> None:
    world.run(world.request())
    old = serving(world)
    world.runtime.on_start = lambda spec: world.orchestrator.never_ready.add(spec.queue)
    current = world.state.module("demo").value.current.id  # type: ignore[union-attr]
    world.orchestrator.add_run(old, "SCHEDULED", name="later", deployment="hello", version=current)
    record = world.run(world.request(CHANGE))
    assert record.status is RunStatus.FAILED and record.error["code"] == "health_check_failed"  # type: ignore[index]
    assert "did not report queue" in record.error["message"] and "READY" in record.error["message"]  # type: ignore[index]
    assert record.stage("register").detail["reverted"]["to"] == old  # type: ignore[union-attr]
    assert serving(world) == old
    assert world.orchestrator.deployments[("demo", "hello")]["revision"] == world.state.module("demo").value.current.id  # type: ignore[union-attr]
    [later] = [r for r in world.orchestrator.runs.values() if r.name == "later"]
    assert (later.queue, later.version) == (old, current)  # back where it was, at the code it runs


def test_a_failed_ladder_on_a_first_deploy_leaves_no_deployment_behind(world: World) -> None:
    world.runtime.on_start = lambda spec: world.orchestrator.never_ready.add(spec.queue)
    record = world.run(world.request())
    assert record.status is RunStatus.FAILED
    assert world.orchestrator.deployments == {} and world.runtime.running("demo") == []


def test_a_smoke_run_that_fails_means_no_cutover(world: World) -> None:
    world.run(world.request())
    old = serving(world)
    world.orchestrator.run_ends = "FAILED"
    record = world.run(world.request({"prefect.yaml": SMOKE_YAML}))
    assert record.status is RunStatus.FAILED and record.error["code"] == "health_check_failed"  # type: ignore[index]
    assert "smoke run" in record.error["message"] and "ended FAILED" in record.error["message"]  # type: ignore[index]
    assert record.stage("commit") is None and serving(world) == old


def test_a_smoke_run_that_passes_is_run_once_even_when_its_step_is_retried(world: World) -> None:
    world.run(world.request())
    original = world.orchestrator.run_status
    calls = []

    def flaky(run_id):  # type: ignore[no-untyped-def]
        calls.append(run_id)
        if len(calls) == 1:
            raise transient("Prefect restarting")
        return original(run_id)

    world.orchestrator.run_status = flaky  # type: ignore[method-assign]
    record = world.run(world.request({"prefect.yaml": SMOKE_YAML}))
    assert record.status is RunStatus.SUCCEEDED
    smoke = [r for r in world.orchestrator.runs.values() if SMOKE_TAG in r.tags]
    assert len(smoke) == 1 and smoke[0].state == "COMPLETED"
    assert record.stage("smoke-run hello").detail["run_id"] == smoke[0].id  # type: ignore[union-attr]


# -- the bake window -------------------------------------------------------------------------------


def baking(world: World, **settings) -> World:  # type: ignore[no-untyped-def]
    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3, **settings)
    return world


def test_a_revision_whose_runs_fail_is_rolled_back_on_its_own_and_marked(world: World) -> None:
    baking(world)
    first = world.run(world.request())
    good = world.state.module("demo").value.current  # type: ignore[union-attr]
    old = serving(world)
    world.orchestrator.add_run(old, "COMPLETED", name="good-run").started_at = world.clock.now - timedelta(hours=1)
    request = world.request(CHANGE)
    settled = world.run(request, settled=True)
    assert settled.status is RunStatus.BAKING
    new = world.current_agent()
    doc = world.state.module("demo").value  # type: ignore[union-attr]
    assert doc.baking is not None and doc.baking.previous_agent == old
    assert old in world.runtime.running("demo")  # kept ready, its queue paused
    assert world.orchestrator.pool_queues["demo"][old] is True
    bad = world.orchestrator.add_run(new, "FAILED", name="bad-run", deployment="hello")
    record = world.run(request)
    assert record.status is RunStatus.ROLLED_BACK
    detail = record.stage("bake").detail  # type: ignore[union-attr]
    assert detail["outcome"] == "rolled_back" and detail["runs"] == [{"id": bad.id, "name": "bad-run", "state": "FAILED"}]
    doc = world.state.module("demo").value  # type: ignore[union-attr]
    assert doc.current.id == good.id and doc.agent.name == old and doc.baking is None  # type: ignore[union-attr]
    assert [r.revision_id for r in doc.refused] == [request.revision.id]
    assert serving(world) == old and world.orchestrator.pool_queues["demo"].get(old) is False
    assert new in world.runtime.stopped
    assert world.state.history("demo")[-1].outcome is RunStatus.ROLLED_BACK
    assert first.status is RunStatus.SUCCEEDED

    told = notify_into(world, Recorder())
    again = world.run(world.request(CHANGE))  # a re-upload of the same content
    assert again.status is RunStatus.REJECTED and again.error["code"] == "revision_refused"  # type: ignore[index]
    assert "rolled back on its own" in again.error["message"] and "deployer deploy" in again.error["hint"]  # type: ignore[index]
    assert serving(world) == old
    refused = world.state.history("demo")[-1]  # the refusal is in history and told, like any outcome
    assert (refused.request_id, refused.outcome) == (again.request_id, RunStatus.REJECTED)
    assert [n.kind for n in told.notices] == ["deploy.rejected"] and "rolled back on its own" in told.notices[0].body

    explicit = world.request(CHANGE)
    explicit = replace(explicit, trigger=Trigger("cli", "x", {**explicit.trigger.detail, "explicit": "true"}))
    assert world.run(explicit, settled=True).status is RunStatus.BAKING  # an explicit deploy still can
    assert world.state.module("demo").value.refused == ()  # type: ignore[union-attr]


def test_a_run_of_the_bad_revision_in_flight_at_rollback_is_left_to_finish_and_reported(world: World) -> None:
    baking(world)
    world.run(world.request())
    old = serving(world)
    request = world.request(CHANGE)
    world.run(request, settled=True)
    new = world.current_agent()
    world.orchestrator.add_run(new, "CRASHED", name="crashed")
    long = world.orchestrator.add_run(new, "RUNNING", name="still-going")
    long.finishes_at = world.clock.now + timedelta(minutes=30)
    record = world.run(request)
    assert record.status is RunStatus.ROLLED_BACK and serving(world) == old
    assert long.state == "COMPLETED"  # finished on the bad revision's agent before it stopped
    drained = record.stage(f"drain {new}")
    assert drained is not None and drained.finished_at >= long.finishes_at  # type: ignore[operator]


def test_a_revision_whose_runs_pass_ends_the_window_and_the_previous_agent_goes(world: World) -> None:
    baking(world)
    world.run(world.request())
    old = serving(world)
    request = world.request(CHANGE)
    world.run(request, settled=True)
    new = world.current_agent()
    for n in range(3):
        world.orchestrator.add_run(new, "COMPLETED", name=f"ok-{n}")
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and record.stage("bake").detail["outcome"] == "passed"  # type: ignore[union-attr]
    assert world.runtime.running("demo") == [new] and old in world.runtime.stopped
    assert world.state.module("demo").value.baking is None  # type: ignore[union-attr]


def test_a_quiet_window_passes_when_its_time_is_up(world: World) -> None:
    baking(world)
    world.run(world.request())
    request = world.request(CHANGE)
    world.run(request, settled=True)
    started = world.clock.now
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and record.stage("bake").detail["runs"] == []  # type: ignore[union-attr]
    assert timedelta(seconds=600) <= world.clock.now - started < timedelta(seconds=640)


def test_no_rollback_when_the_previous_revision_failed_as_often(world: World) -> None:
    baking(world)
    world.run(world.request())
    old = serving(world)
    for n in range(4):
        world.orchestrator.add_run(old, "FAILED", name=f"old-{n}").started_at = world.clock.now - timedelta(hours=n + 1)
    request = world.request(CHANGE)
    world.run(request, settled=True)
    world.orchestrator.add_run(world.current_agent(), "FAILED", name="new-1")
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and record.stage("bake").detail["previous_ratio"] == 1.0  # type: ignore[union-attr]
