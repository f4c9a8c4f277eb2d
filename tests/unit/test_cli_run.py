"""``deployer run MODULE[/DEPLOYMENT]``, in-process on a world of fakes: it runs the deployed
flow on the deployer's own Prefect API, follows it to its end, and refuses what would only fail
later (a parameter the flow does not take, a deployment or module that does not exist)."""

from __future__ import annotations

import json

import pytest

from deployer.errors import UsageError
from deployer.pipeline.flow_runs import parse_parameters
from tests.unit.pipeline_world import World

TWO = """name: demo
deployments:
  - name: hello
    entrypoint: flow.py:hello
  - name: hello-late
    entrypoint: flow.py:hello
"""


def test_run_watch_follows_the_run_to_its_end_and_names_the_revision_it_ran(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    record = world.run(world.request())
    assert record.revision is not None
    code, out, _ = cli("run", "demo", "--param", "name=Ada", "--watch")
    assert code == 0, out
    [run] = [r for r in world.orchestrator.runs.values() if r.deployment == "hello"]
    assert run.version == record.revision.id and record.revision.id in out
    assert out.index("RUNNING") < out.index("Finished in state Completed()") < out.rindex("COMPLETED")
    assert f"flow run {run.name}: COMPLETED" in out


def test_a_run_that_fails_exits_1_with_its_message(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request())
    world.orchestrator.run_ends = "FAILED"
    code, out, err = cli("run", "demo/hello", "--watch")
    assert code == 1 and "FAILED" in err and "Finished in state Failed()" in out


def test_run_without_watch_says_how_to_follow_it_on_the_right_api(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request())
    code, out, _ = cli("run", "demo")
    [run] = world.orchestrator.runs.values()
    assert code == 0 and run.id in out
    assert f"PREFECT_API_URL={world.services.settings.prefect_api_url}" in out
    code, out, _ = cli("run", "demo", "--json")
    assert code == 0 and json.loads(out)["target"]["deployment"] == "hello"


def test_a_parameter_the_flow_does_not_take_is_refused_before_any_run(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request())
    code, _, err = cli("run", "demo", "--param", "nmae=Ada", "--watch")
    assert code == 2 and "takes no parameter 'nmae'" in err and "name" in err
    assert not world.orchestrator.runs


def test_a_module_with_several_deployments_asks_which_and_a_typo_gets_a_suggestion(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request({"prefect.yaml": TWO}))
    code, _, err = cli("run", "demo")
    assert code == 2 and "demo/hello-late" in err and "say which" in err
    code, _, err = cli("run", "demo/helo")
    assert code == 1 and "did you mean demo/hello?" in err
    code, _, err = cli("run", "dmeo")
    assert code == 1 and "no module 'dmeo'" in err and "did you mean demo?" in err
    assert not world.orchestrator.runs
    code, out, _ = cli("run", "demo/demo/hello-late")  # flow/name, as Prefect shows it
    assert code == 0 and "demo/hello-late" in out


def test_a_removed_module_has_nothing_to_run(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request())
    assert cli("remove", "demo")[0] == 0
    code, _, err = cli("run", "demo")
    assert code == 1 and "no deployed revision" in err


def test_parameters_are_json_when_they_parse_and_text_otherwise() -> None:
    assert parse_parameters(["n=3", "flag=true", "day=2026-12-06", "xs=[1, 2]", "empty=", "eq=a=b"]) == \
        {"n": 3, "flag": True, "day": "2026-12-06", "xs": [1, 2], "empty": "", "eq": "a=b"}
    with pytest.raises(UsageError, match="not KEY=VALUE"):
        parse_parameters(["novalue"])


def test_watch_prints_each_line_once_also_one_that_arrives_after_a_later_one(world: World) -> None:
    from datetime import timedelta

    from deployer.pipeline.flow_runs import watch

    world.run(world.request())
    fake, now = world.orchestrator, world.services.now()
    run = fake.start_run("demo", "hello")
    fake.log(run.id, "second", at=now + timedelta(seconds=2))
    events = watch(world.services, run.id)
    first = next(events)
    assert first.log is not None and first.log.message == "second"
    fake.log(run.id, "first, sent late", at=now + timedelta(seconds=1))  # another process's batch
    lines = [e.log.message for e in events if e.log is not None]
    assert lines == ["first, sent late", "Finished in state Completed()"]


def test_watching_a_run_that_vanishes_with_nothing_in_its_place_says_so(world: World) -> None:
    from deployer.errors import NotFound
    from deployer.pipeline.flow_runs import watch

    with pytest.raises(NotFound, match="gone from Prefect") as gone:
        list(watch(world.services, "run-404"))
    assert gone.value.hint == "someone deleted it: no run of its name took its place"


def test_a_run_its_agent_stopped_for_its_memory_says_so_and_which_limit(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request())
    world.orchestrator.run_ends = "CRASHED"
    agent = world.current_agent()
    code, _, err = cli("run", "demo/hello", "--watch")
    assert code == 1 and "CRASHED" in err and "stopped by its agent" not in err  # a crash of its own

    upcoming = f"run-{world.orchestrator._ids + 1}"  # the fake's next run id
    world.runtime.answers[agent] = ["DEPLOYER-LIMIT " + json.dumps(
        {"flow_run": upcoming, "pid": 2, "used": int(0.8 * 1024**3), "limit": 512 * 1024**2})]
    code, _, err = cli("run", "demo/hello", "--watch")
    assert code == 1
    assert (f"flow run {upcoming}: CRASHED after" in err and "stopped by its agent, it used 0.80 GB, "
            "more than the memory limit of hello (0.5 GB, work_pool.job_variables.memory in "
            "prefect.yaml)" in err)
    upcoming = f"run-{world.orchestrator._ids + 1}"
    world.runtime.answers[agent].append("DEPLOYER-LIMIT " + json.dumps(
        {"flow_run": upcoming, "pid": 3, "used": 2 * 1024**3, "limit": 1024**3}))
    code, out, _ = cli("run", "demo/hello", "--watch", "--json")
    assert code == 1 and json.loads(out)["over_memory_limit"]["limit"] == 1024**3


def test_a_watch_follows_its_run_when_a_deploy_re_creates_it_before_it_starts(world: World) -> None:
    """A run not started when its deployment moves to another revision is re-created there
    under the same name: the watch says so and follows the new run, never 'gone'."""
    from deployer.pipeline.flow_runs import target, watch

    world.run(world.request())
    where = target(world.services, "demo/hello")
    started = world.services.orchestrator.start_run(where.flow, where.deployment, {})
    world.orchestrator.runs[started.id].state = "SCHEDULED"  # waiting for a worker
    events = watch(world.services, started.id, timeout=30)
    assert next(events).state == "SCHEDULED"
    newer = world.run(world.request({".env": "GREETING=newer\n"}))  # registered elsewhere
    assert newer.revision is not None
    moved = [e.moved for e in events if e.moved is not None]
    assert [(m.name, m.version) for m in moved] == [(started.name, newer.revision.id)]
    assert moved[0].id != started.id
