"""The deploy pipeline against fakes of every port, driven by a simulated queue trigger:
decisions, checkpoints, waits as delayed continuations, failure handling."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from deployer import codec
from deployer.models import RunStatus, StageStatus
from deployer.ports.agents import AgentState
from deployer.request_queue import StepMessage
from tests.builders import module_tar
from tests.fakes.platform import build_failure, transient
from tests.unit.pipeline_world import World

CODE_CHANGE = {"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 2\n"}
CONFIG_CHANGE = {".env": "GREETING=x\n"}


def stages(record) -> dict[str, StageStatus]:  # type: ignore[no-untyped-def]
    return {s.name: s.status for s in record.stages}


def test_first_deploy_builds_starts_and_points_deployments_at_the_new_agent(world: World) -> None:
    record = world.run(world.request())
    assert record.status is RunStatus.SUCCEEDED
    assert list(stages(record)) == ["enqueue", "plan", "build", "start-agent", "check-entrypoints",
                                    "wait-online", "register", "wait-ready", "commit"]
    assert len(world.builder.builds) == 1
    [agent] = world.runtime.running("demo")
    assert world.current_agent() == agent
    assert world.orchestrator.deployments[("demo", "hello")]["queue"] == agent
    assert world.orchestrator.deployments[("demo", "hello")]["working_dir"] == "/opt/prefect/flows/demo"
    state = world.state.module("demo").value  # type: ignore[union-attr]
    assert state.current.image.startswith("registry/demo:")  # type: ignore[union-attr]
    assert state.owner is None and state.newest.request_id == record.request_id  # type: ignore[union-attr]
    [entry] = world.state.history("demo")
    assert entry.outcome is RunStatus.SUCCEEDED and "build" in entry.stages


def test_the_record_holds_the_plan_it_carried_out(world: World) -> None:
    record = world.run(world.request())
    assert [op["op"] for op in record.plan] == ["build", "start-agent", "check-entrypoints", "wait-online",
                                                "register", "wait-ready", "commit"]
    assert [s.name for s in record.stages if s.name not in ("enqueue", "plan")] == \
        [op["op"] for op in record.plan]


def test_agent_gets_env_values_and_api_key_as_secrets_not_settings(world: World) -> None:
    seen = []
    world.runtime.on_start = seen.append
    world.run(world.request())
    [spec] = seen
    assert spec.env == {"GREETING": "hi", "API_TOKEN": "s3cr3t-token-value", "PREFECT_API_KEY": "pnu_secret_key"}
    assert spec.settings["PREFECT_API_URL"] == "http://prefect/api"
    assert "s3cr3t" not in repr(spec) and "pnu_secret" not in repr(spec)


def test_the_same_bundle_again_is_a_noop_without_build_or_start(world: World) -> None:
    world.run(world.request())
    record = world.run(world.request())
    assert record.status is RunStatus.NOOP
    assert len(world.builder.builds) == 1 and len(world.runtime.started) == 1
    assert len(world.state.history("demo")) == 1
    assert world.state.module("demo").value.owner is None  # type: ignore[union-attr]


def test_code_change_rotates_to_a_new_agent_and_retires_the_old_one(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    serving = world.state.module("demo").value.current.id  # type: ignore[union-attr]
    scheduled = world.orchestrator.add_run(old, "SCHEDULED", name="tomorrow", deployment="hello", version=serving)
    record = world.run(world.request(CODE_CHANGE))
    assert record.status is RunStatus.SUCCEEDED
    new = world.current_agent()
    assert new != old and world.runtime.running("demo") == [new]
    assert world.runtime.stopped == [old]
    assert len(world.builder.builds) == 2
    assert scheduled.id not in world.orchestrator.runs  # re-homed, not stranded
    assert [r.queue for r in world.orchestrator.runs.values() if r.name == "tomorrow"] == [new]
    assert old not in world.orchestrator.pool_queues["demo"]
    # moved with its deployment when that was registered at the new revision (and labelled so),
    # so that the old agent never takes it with the new code: nothing was left to re-home
    [moved] = [r for r in world.orchestrator.runs.values() if r.name == "tomorrow"]
    assert moved.version == record.revision.id  # type: ignore[union-attr]
    assert record.stage(f"hold-queue {old}").detail["rehomed"] == []  # type: ignore[union-attr]
    assert world.state.module("demo").value.draining == ()  # type: ignore[union-attr]


def test_config_only_change_starts_a_new_agent_from_the_same_image(world: World) -> None:
    world.run(world.request())
    record = world.run(world.request({".env": "GREETING=hello\nAPI_TOKEN=rotated\n"}))
    assert record.status is RunStatus.SUCCEEDED
    assert len(world.builder.builds) == 1
    assert stages(record)["reuse-image"] is StageStatus.SKIPPED and "build" not in stages(record)
    assert len(world.runtime.started) == 2 and len(world.runtime.running("demo")) == 1


# -- waits are looks plus delayed continuations -------------------------------------------------


def test_a_long_build_is_looked_at_from_delayed_continuations_never_started_twice(world: World) -> None:
    world.builder.looks_to_build = 6
    record = world.run(world.request())
    assert record.status is RunStatus.SUCCEEDED and len(world.builder.builds) == 1
    assert len(world.builder.status_looks) == 7
    slice_seconds = world.services.settings.step_slice_seconds
    assert max(i.seconds for i in world.trigger.invocations) <= slice_seconds
    assert len(world.trigger.invocations) >= 2 and max(world.queue.delays) > 0


def test_the_request_record_says_what_it_waits_for_and_when_it_looks_again(world: World) -> None:
    world.builder.looks_to_build = 50
    request = world.request()
    world.submit(request)
    world.trigger.pump(until=lambda: world.record(request).waiting is not None)
    record = world.record(request)
    assert record.status is RunStatus.RUNNING and record.waiting is not None
    assert "build run-1" in record.waiting.what and record.waiting.next_look_at > world.clock.now  # type: ignore[operator]
    assert record.waiting.on == "build"


def test_stale_messages_are_dropped_and_the_queue_does_not_grow(world: World) -> None:
    world.builder.looks_to_build = 20
    request = world.request()
    world.run(request)
    record = world.record(request)
    # every message but the one the record expects is stale: a second copy changes nothing
    for body in list(world.queue.sent):
        world.services.queue.send(body)
    world.pump()
    assert world.record(request) == record
    assert world.queue.messages == [] and world.queue.poison == []


def test_in_flight_runs_of_the_old_agent_finish_before_it_is_stopped(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    long_run = world.orchestrator.add_run(old, "RUNNING", name="long")
    long_run.finishes_at = world.clock.now + timedelta(minutes=20)
    request = world.request(CONFIG_CHANGE)
    settled = world.run(request, settled=True)
    assert settled.status is RunStatus.DRAINING  # the new revision serves meanwhile
    assert world.current_agent() != old and old in world.runtime.running("demo")
    assert "1 run(s) in flight on old agent" in settled.waiting.what  # type: ignore[union-attr]
    state = world.state.module("demo").value  # type: ignore[union-attr]
    assert [d.name for d in state.draining] == [old] and state.owner is None
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED
    assert long_run.state == "COMPLETED" and world.runtime.stopped == [old]
    assert record.stage(f"drain {old}").detail["crashed"] == []  # type: ignore[union-attr]
    assert max(i.seconds for i in world.trigger.invocations) <= world.services.settings.step_slice_seconds


def test_the_module_is_free_for_the_next_deploy_while_old_agents_drain(world: World) -> None:
    world.run(world.request())
    first = world.current_agent()
    long_run = world.orchestrator.add_run(first, "RUNNING", name="long")
    long_run.finishes_at = world.clock.now + timedelta(hours=2)
    draining = world.request(CONFIG_CHANGE)
    world.run(draining, settled=True)
    second = world.current_agent()
    nxt = world.run(world.request(CODE_CHANGE))
    assert nxt.status is RunStatus.SUCCEEDED and world.current_agent() not in (first, second)
    # the next deploy retired the second agent, but the first is the draining request's to retire
    assert first in world.runtime.running("demo") and second in world.runtime.stopped
    assert world.record(draining).status is RunStatus.DRAINING
    world.run(draining)
    assert long_run.state == "COMPLETED" and world.runtime.running("demo") == [world.current_agent()]


def test_runs_past_the_drain_deadline_are_marked_crashed_and_the_record_says_which(world: World) -> None:
    world.services.settings = replace(world.services.settings, drain_timeout_seconds=3600)
    world.run(world.request())
    old = world.current_agent()
    stuck = world.orchestrator.add_run(old, "RUNNING", name="stuck")
    record = world.run(world.request(CONFIG_CHANGE))
    assert record.status is RunStatus.SUCCEEDED
    assert stuck.state == "CRASHED"
    detail = record.stage(f"drain {old}").detail  # type: ignore[union-attr]
    assert detail["crashed"] == [stuck.id] and detail["timed_out"] is True
    assert world.runtime.stopped == [old]
    drained = record.stage(f"drain {old}")
    assert timedelta(hours=1) <= drained.finished_at - drained.started_at < timedelta(hours=1, minutes=6)  # type: ignore[union-attr,operator]


def test_runs_of_an_old_agent_that_already_died_are_crashed_without_waiting(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    orphan = world.orchestrator.add_run(old, "RUNNING")
    world.runtime.kill(old)
    started = world.clock.now
    world.run(world.request(CONFIG_CHANGE))
    assert orphan.state == "CRASHED" and world.clock.now - started < timedelta(seconds=30)


# -- failures --------------------------------------------------------------------------------------


def test_build_failure_is_recorded_and_the_old_agent_keeps_serving(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    world.builder.fails = build_failure()
    record = world.run(world.request({"requirements.txt": "prefect\nnope==0\n"}))
    assert record.status is RunStatus.FAILED and record.error["code"] == "build_failed"  # type: ignore[index]
    assert "No matching distribution" in record.error["log_tail"]  # type: ignore[index]
    assert stages(record)["build"] is StageStatus.FAILED
    assert world.runtime.running("demo") == [old] and world.current_agent() == old
    assert world.state.history("demo")[-1].outcome is RunStatus.FAILED
    assert world.state.module("demo").value.owner is None  # type: ignore[union-attr]


def test_agent_that_never_comes_online_is_removed_after_the_health_timeout(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    world.runtime.on_start = lambda spec: world.orchestrator.never_online.add(spec.name)
    started = world.clock.now
    record = world.run(world.request(CONFIG_CHANGE))
    assert record.status is RunStatus.FAILED and record.error["code"] == "agent_unhealthy"  # type: ignore[index]
    assert "did not come ONLINE" in record.error["message"]  # type: ignore[index]
    assert world.runtime.running("demo") == [old] and world.current_agent() == old
    assert len(world.runtime.stopped) == 1 and world.runtime.stopped[0] != old
    assert timedelta(seconds=60) <= world.clock.now - started < timedelta(seconds=100)


def test_agent_that_exits_during_the_health_check_fails_fast(world: World) -> None:
    world.runtime.on_start = lambda spec: (world.orchestrator.never_online.add(spec.name),
                                           world.runtime.kill(spec.name))
    record = world.run(world.request())
    assert record.status is RunStatus.FAILED and "stopped before its worker came ONLINE" in record.error["message"]  # type: ignore[index]
    assert world.clock.slept == 0 and world.runtime.running("demo") == []
    assert world.state.module("demo").value.current is None  # type: ignore[union-attr]


def test_transient_failure_is_retried_by_redelivery_without_redoing_work(world: World) -> None:
    request = world.request()
    world.orchestrator.fail_next["register"] = transient()
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and record.attempts == 2
    assert len(world.builder.builds) == 1 and len(world.runtime.started) == 1
    assert world.runtime.running("demo") == [world.current_agent()]
    assert [i.failed for i in world.trigger.invocations] == [True, False]


def test_a_failure_while_looking_at_a_build_resumes_the_same_build(world: World) -> None:
    world.builder.looks_to_build = 3
    original = world.builder.build_status
    calls = []

    def flaky(module, code, build_id):  # type: ignore[no-untyped-def]
        calls.append(build_id)
        if len(calls) == 2:
            raise transient("connection reset while reading the build")
        return original(module, code, build_id)

    world.builder.build_status = flaky  # type: ignore[method-assign]
    assert world.run(world.request()).status is RunStatus.SUCCEEDED
    assert len(world.builder.builds) == 1 and set(calls) == {"run-1"}


def test_the_last_attempt_records_the_failure_and_rolls_back(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    request = world.request(CONFIG_CHANGE)

    def prefect_down(spec):  # type: ignore[no-untyped-def]
        for _ in range(10):
            world.orchestrator.fail_next["online_workers"] = transient()
        world.orchestrator.online_workers = lambda pool: (_ for _ in ()).throw(transient())  # type: ignore[method-assign]

    world.runtime.on_start = prefect_down
    record = world.run(request)
    assert record.status is RunStatus.FAILED and record.error["code"] == "upstream_error"  # type: ignore[index]
    assert record.attempts == 5 and world.queue.poison == []
    assert world.runtime.running("demo") == [old]


def test_a_redelivered_finished_request_is_not_done_again(world: World) -> None:
    request = world.request()
    first = world.run(request)
    world.services.queue.send(StepMessage("demo", request.request_id, first.token).encode())
    world.pump()
    assert world.record(request) == first and len(world.runtime.started) == 1


def test_a_step_that_finds_the_module_lock_busy_puts_its_message_back_not_in_poison(world: World) -> None:
    request = world.request()
    world.submit(request)
    with world.state.lock("demo"):
        world.trigger.pump(until=lambda: len(world.trigger.invocations) >= 3)
    assert world.record(request).status is RunStatus.QUEUED and world.queue.poison == []
    assert not any(i.failed for i in world.trigger.invocations)
    world.pump()
    assert world.record(request).status is RunStatus.SUCCEEDED


def test_agents_left_over_by_an_interrupted_rotation_are_retired(world: World) -> None:
    world.run(world.request())
    current = world.current_agent()
    leftover = replace(world.runtime.agents[current].spec, name="agent-demo-leftover", queue="agent-demo-leftover")
    world.runtime.start(leftover)
    record = world.run(world.request())
    assert record.status is RunStatus.NOOP
    assert world.runtime.running("demo") == [current] and "agent-demo-leftover" in world.runtime.stopped


def test_an_unhealthy_current_agent_is_replaced_even_for_the_same_revision(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    world.runtime.kill(old)
    record = world.run(world.request())
    assert record.status is RunStatus.SUCCEEDED
    assert world.current_agent() != old and world.runtime.running("demo") == [world.current_agent()]
    assert record.stage("plan").detail["reason"].startswith("same revision, but its agent is not healthy")  # type: ignore[union-attr]


def test_bundle_overwritten_after_acceptance_fails_without_touching_agents(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    request = world.request(CONFIG_CHANGE)
    world.bundles.put(request.revision.bundle, module_tar(changes={".env": "GREETING=y\n"}))
    record = world.run(request)
    assert record.status is RunStatus.FAILED and "overwritten" in str(record.error)
    assert world.runtime.running("demo") == [old]


def test_stage_failures_and_records_never_contain_secrets(world: World) -> None:
    world.builder.fails = build_failure()
    record = world.run(world.request())
    text = codec.dumps(record).decode() + str(world.state.history("demo")) + str(world.queue.sent)
    assert "s3cr3t-token-value" not in text and "pnu_secret_key" not in text


def test_agent_state_stopped_is_not_running(world: World) -> None:
    world.run(world.request())
    world.runtime.kill(world.current_agent())
    assert world.runtime.get(world.current_agent()).state is AgentState.STOPPED  # type: ignore[union-attr]


def test_a_cutover_that_can_neither_finish_nor_be_undone_keeps_both_agents(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    request = world.request(CONFIG_CHANGE)
    for _ in range(5):  # after register re-pointed them, on every attempt
        world.orchestrator.fail_next["rehome_scheduled"] = transient()
    original = world.orchestrator.rehome_scheduled

    def always_down(pool, frm, to):  # type: ignore[no-untyped-def]
        raise transient()

    world.orchestrator.rehome_scheduled = always_down  # type: ignore[method-assign]
    record = world.run(request)
    world.orchestrator.rehome_scheduled = original  # type: ignore[method-assign]
    assert record.status is RunStatus.FAILED
    assert len(world.runtime.running("demo")) == 2 and old in world.runtime.running("demo")
    assert world.orchestrator.deployments[("demo", "hello")]["queue"] in world.runtime.running("demo")
    assert world.state.module("demo").value.owner is None  # type: ignore[union-attr]
    assert world.current_agent() == old


def test_a_deployment_name_another_module_owns_is_refused_before_any_agent_starts(world: World) -> None:
    world.run(world.request(module="demo"))
    thief = {"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 1\n"}
    record = world.run(world.request(thief, module="copy"))
    assert record.status is RunStatus.FAILED and record.error["code"] == "bundle_invalid"  # type: ignore[index]
    [problem] = record.error["problems"]  # type: ignore[index]
    assert problem["file"] == "prefect.yaml" and problem["line"] == 3
    assert "already belongs to work pool 'demo'" in problem["message"]
    assert world.runtime.started == [world.current_agent("demo")]  # nothing started for copy
    assert world.orchestrator.deployments[("demo", "hello")]["flow"] == "demo"
