"""The deploy pipeline against fakes of every port: decisions, checkpoints, failure handling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deployer.errors import LockBusy, UpstreamError
from deployer.models import RunStatus, StageStatus
from deployer.ports import AgentState
from tests.builders import module_tar
from tests.fakes.platform import build_failure, transient
from tests.unit.pipeline_world import World


def stages(record) -> dict[str, StageStatus]:  # type: ignore[no-untyped-def]
    return {s.name: s.status for s in record.stages}


def test_first_deploy_builds_starts_and_points_deployments_at_the_new_agent(world: World) -> None:
    record = world.run(world.request())
    assert record.status is RunStatus.SUCCEEDED
    assert list(stages(record)) == ["prepare", "plan", "build", "start", "health", "cutover"]
    assert len(world.builder.builds) == 1
    [agent] = world.runtime.running("demo")
    assert world.current_agent() == agent
    assert world.orchestrator.deployments[("demo", "hello")]["queue"] == agent
    assert world.orchestrator.deployments[("demo", "hello")]["working_dir"] == "/opt/prefect/flows/demo"
    state = world.state.module("demo").value  # type: ignore[union-attr]
    assert state.current.image.startswith("registry/demo:")  # type: ignore[union-attr]
    [entry] = world.state.history("demo")
    assert entry.outcome is RunStatus.SUCCEEDED and "build" in entry.stages


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


def test_code_change_rotates_to_a_new_agent_and_retires_the_old_one(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    scheduled = world.orchestrator.add_run(old, "SCHEDULED", name="tomorrow", deployment="hello")
    record = world.run(world.request({"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 2\n"}))
    assert record.status is RunStatus.SUCCEEDED
    new = world.current_agent()
    assert new != old and world.runtime.running("demo") == [new]
    assert world.runtime.stopped == [old]
    assert len(world.builder.builds) == 2
    assert scheduled.id not in world.orchestrator.runs  # re-homed, not stranded
    assert [r.queue for r in world.orchestrator.runs.values() if r.name == "tomorrow"] == [new]
    assert old not in world.orchestrator.pool_queues["demo"]
    assert record.stage("cutover").detail["rehomed"] == [[scheduled.id, "run-2"]]  # type: ignore[union-attr]


def test_config_only_change_starts_a_new_agent_from_the_same_image(world: World) -> None:
    world.run(world.request())
    record = world.run(world.request({".env": "GREETING=hello\nAPI_TOKEN=rotated\n"}))
    assert record.status is RunStatus.SUCCEEDED
    assert len(world.builder.builds) == 1
    assert stages(record)["build"] is StageStatus.SKIPPED
    assert len(world.runtime.started) == 2 and len(world.runtime.running("demo")) == 1


def test_in_flight_runs_of_the_old_agent_finish_before_it_is_stopped(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    long_run = world.orchestrator.add_run(old, "RUNNING", name="long")
    polls = []

    def finish_after_three_polls(pool: str, queue: str):  # type: ignore[no-untyped-def]
        polls.append(queue)
        if len(polls) == 3:
            long_run.state = "COMPLETED"
        return original(pool, queue)

    original = world.orchestrator.in_flight
    world.orchestrator.in_flight = finish_after_three_polls  # type: ignore[method-assign]
    record = world.run(world.request({".env": "GREETING=x\n"}))
    assert record.status is RunStatus.SUCCEEDED
    assert long_run.state == "COMPLETED" and world.runtime.stopped == [old]
    assert record.stage("drain").detail["leftover"] == []  # type: ignore[union-attr]


def test_runs_that_outlive_the_drain_timeout_are_marked_crashed(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    stuck = world.orchestrator.add_run(old, "RUNNING", name="stuck")
    record = world.run(world.request({".env": "GREETING=x\n"}))
    assert record.status is RunStatus.SUCCEEDED
    assert stuck.state == "CRASHED"
    assert record.stage("drain").detail == {"agents": [old], "leftover": [stuck.id], "timed_out": True}  # type: ignore[union-attr]
    assert 120 <= world.clock.slept < 130
    assert world.runtime.stopped == [old]


def test_runs_of_an_old_agent_that_already_died_are_crashed_without_waiting(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    orphan = world.orchestrator.add_run(old, "RUNNING")
    world.runtime.kill(old)
    world.run(world.request({".env": "GREETING=x\n"}))
    assert orphan.state == "CRASHED" and world.clock.slept < 5


def test_build_failure_is_recorded_and_the_old_agent_keeps_serving(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    world.builder.fail_with = build_failure()
    record = world.run(world.request({"requirements.txt": "prefect\nnope==0\n"}))
    assert record.status is RunStatus.FAILED and record.error["code"] == "build_failed"  # type: ignore[index]
    assert "No matching distribution" in record.error["log_tail"]  # type: ignore[index]
    assert stages(record)["build"] is StageStatus.FAILED
    assert world.runtime.running("demo") == [old] and world.current_agent() == old
    assert world.state.history("demo")[-1].outcome is RunStatus.FAILED


def test_agent_that_never_comes_online_is_removed_after_the_health_timeout(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    world.runtime.on_start = lambda spec: world.orchestrator.never_online.add(spec.name)
    record = world.run(world.request({".env": "GREETING=x\n"}))
    assert record.status is RunStatus.FAILED and record.error["code"] == "agent_unhealthy"  # type: ignore[index]
    assert "did not come ONLINE" in record.error["message"]  # type: ignore[index]
    assert world.runtime.running("demo") == [old] and world.current_agent() == old
    assert len(world.runtime.stopped) == 1 and world.runtime.stopped[0] != old
    assert 60 <= world.clock.slept < 66  # polls back off to at most 5 s apart


def test_agent_that_exits_during_the_health_check_fails_fast(world: World) -> None:
    world.runtime.on_start = lambda spec: (world.orchestrator.never_online.add(spec.name),
                                           world.runtime.kill(spec.name))
    record = world.run(world.request())
    assert record.status is RunStatus.FAILED and "stopped before its worker came ONLINE" in record.error["message"]  # type: ignore[index]
    assert world.clock.slept == 0 and world.runtime.running("demo") == []
    assert world.state.module("demo") is None


def test_transient_failure_raises_for_a_retry_that_resumes_without_redoing_work(world: World) -> None:
    request = world.request()
    world.orchestrator.fail_next["register"] = transient()
    with pytest.raises(UpstreamError):
        world.run(request, attempt=1)
    assert world.state.run("demo", request.request_id).value.status is RunStatus.RUNNING  # type: ignore[union-attr]
    record = world.run(request, attempt=2)
    assert record.status is RunStatus.SUCCEEDED
    assert len(world.builder.builds) == 1 and len(world.runtime.started) == 1
    assert world.runtime.running("demo") == [world.current_agent()]


def test_a_crash_mid_build_resumes_the_same_build_with_its_checkpoint(world: World) -> None:
    request = world.request()
    world.builder.fail_with = transient("connection reset while polling the build")
    with pytest.raises(UpstreamError):
        world.run(request, attempt=1)
    world.builder.fail_with = None
    resumed = []
    original = world.builder.build

    def spy(module, code, source, *, resume, checkpoint):  # type: ignore[no-untyped-def]
        resumed.append(resume)
        return original(module, code, source, resume=resume, checkpoint=checkpoint)

    world.builder.build = spy  # type: ignore[method-assign]
    assert world.run(request, attempt=2).status is RunStatus.SUCCEEDED
    assert resumed == [{"run_id": "run-1"}]


def test_the_last_attempt_records_the_failure_and_rolls_back(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    request = world.request({".env": "GREETING=x\n"})
    # the new agent starts, then Prefect cannot be reached while we wait for its worker
    world.runtime.on_start = lambda spec: world.orchestrator.fail_next.__setitem__("online_workers", transient())
    record = world.run(request, attempt=5)
    assert record.status is RunStatus.FAILED and record.error["code"] == "upstream_error"  # type: ignore[index]
    assert world.runtime.running("demo") == [old]


def test_a_redelivered_finished_request_is_not_done_again(world: World) -> None:
    request = world.request()
    first = world.run(request)
    again = world.run(request)
    assert again == first and len(world.runtime.started) == 1


def test_a_busy_module_lock_raises_so_the_host_retries_later(world: World) -> None:
    request = world.request()
    with world.state.lock("demo"), pytest.raises(LockBusy):
        world.run(request)


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
    request = world.request({".env": "GREETING=x\n"})
    world.bundles.put(request.revision.bundle, module_tar(changes={".env": "GREETING=y\n"}))
    record = world.run(request)
    assert record.status is RunStatus.FAILED and "overwritten" in str(record.error)
    assert world.runtime.running("demo") == [old]


def test_stage_failures_and_records_never_contain_secrets(world: World) -> None:
    from deployer import codec

    world.builder.fail_with = build_failure()
    record = world.run(world.request())
    text = codec.dumps(record).decode() + str(world.state.history("demo"))
    assert "s3cr3t-token-value" not in text and "pnu_secret_key" not in text


def test_agent_state_stopped_is_not_running(world: World) -> None:
    world.run(world.request())
    world.runtime.kill(world.current_agent())
    assert world.runtime.get(world.current_agent()).state is AgentState.STOPPED  # type: ignore[union-attr]


def test_a_final_failure_during_cutover_keeps_the_new_agent_that_deployments_may_point_at(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    request = world.request({".env": "GREETING=x\n"})
    world.orchestrator.fail_next["rehome_scheduled"] = transient()  # after register re-pointed them
    record = world.run(request, attempt=5)
    assert record.status is RunStatus.FAILED
    assert len(world.runtime.running("demo")) == 2 and old in world.runtime.running("demo")
    new = next(n for n in world.runtime.running("demo") if n != old)
    assert world.orchestrator.deployments[("demo", "hello")]["queue"] == new
