"""``isolation: run``: no agent; a revision is proven in a container of its own, its deployments
point at the per-run queue, and the dispatcher gives every flow run a container of the revision's
image, sized by its deployment, with the .env only as secrets; ended containers are removed and
a run whose container died is marked CRASHED saying why. A switch between modes is a deploy."""

from __future__ import annotations

import json
from datetime import timedelta

from deployer.models import PER_RUN_QUEUE, RunStatus
from deployer.pipeline.per_run import CLAIM_GRACE, container_name, tick
from deployer.ports.agents import AgentState, Role
from deployer.run_limits import RUN_MEMORY_ENV
from tests.unit.pipeline_world import World

FLOWS = ("from prefect import flow\n\n\n@flow(name='demo')\ndef hello() -> None: ...\n\n\n"
         "@flow(name='demo-big')\ndef big() -> None: ...\n")


def yaml(isolation: str = "run", small: str = "memory: 0.5", big: str = "cpu: 2, memory: 4") -> str:
    top = f"deployer:\n  isolation: {isolation}\n" if isolation else ""
    return (f"name: demo\n{top}deployments:\n"
            f"  - name: hello\n    entrypoint: flow.py:hello\n"
            f"    work_pool:\n      job_variables: {{{small}}}\n"
            f"  - name: big\n    entrypoint: flow.py:big\n"
            f"    work_pool:\n      job_variables: {{{big}}}\n")


def per_run(isolation: str = "run") -> dict[str, str | bytes | None]:
    return {"prefect.yaml": yaml(isolation), "flow.py": FLOWS}


def ops(record) -> list[str]:  # type: ignore[no-untyped-def]
    return [op["op"] for op in record.plan]


def containers(world: World, role: Role = Role.RUN) -> list:  # type: ignore[type-arg]
    return [a.spec for a in world.runtime.agents.values() if a.spec.role is role]


def test_a_module_whose_runs_each_get_a_container_deploys_with_no_agent(world: World) -> None:
    request = world.request(per_run())
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED, record.error
    assert ops(record) == ["build", "check-container", "register", "commit"]
    assert world.runtime.list("demo") == []  # no agent
    assert len([n for n in world.runtime.stopped if n.endswith("-check")]) == 1  # proven, removed
    assert containers(world, Role.CHECK) == []
    doc = world.state.module("demo").value  # type: ignore[union-attr]
    assert doc.agent is None and doc.current is not None and doc.current.per_run
    image = doc.current.image
    for name, memory in (("hello", 0.5), ("big", 4)):
        deployment = world.orchestrator.deployments[("demo", name)]
        assert deployment["queue"] == PER_RUN_QUEUE and deployment["revision"] == request.revision.id
        assert deployment["job_variables"]["image"] == image
        assert deployment["job_variables"]["memory"] == memory
    assert world.state.history("demo")[-1].outcome is RunStatus.SUCCEEDED
    # deploying it again is nothing to do
    again = world.run(world.request(per_run()))
    assert again.status is RunStatus.NOOP and ops(again) == []


def test_a_revision_whose_flows_do_not_load_in_its_container_is_refused_and_nothing_changes(
        world: World) -> None:
    world.run(world.request(per_run()))
    before = dict(world.orchestrator.deployments[("demo", "hello")])
    world.runtime.preflight = lambda spec: [
        {"deployment": n, "ok": False, "entrypoint": e, "exception": "ModuleNotFoundError",
         "message": "No module named 'pandas'", "file": "flow.py", "line": 1} for n, e in spec.entrypoints]
    record = world.run(world.request({**per_run(), ".env": "GREETING=other\n"}))
    assert record.status is RunStatus.FAILED and record.error["code"] == "bundle_invalid"  # type: ignore[index]
    assert "No module named 'pandas'" in json.dumps(record.error)
    assert world.orchestrator.deployments[("demo", "hello")] == before
    assert containers(world, Role.CHECK) == []  # the check's container is removed all the same


def deployed(world: World) -> str:
    request = world.request(per_run())
    assert world.run(request).status is RunStatus.SUCCEEDED
    return request.revision.id


def test_each_run_gets_a_container_of_its_deployments_size_with_the_env_only_as_secrets(
        world: World) -> None:
    revision = deployed(world)
    small = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    big = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="big", version=revision)
    report = tick(world.services)
    assert sorted(report.started) == sorted([small.id, big.id])
    specs = {s.flow_run_id: s for s in containers(world)}
    assert (specs[small.id].cpu, specs[small.id].memory_gb) == (1.0, 0.5)  # cpu: the default
    assert (specs[big.id].cpu, specs[big.id].memory_gb) == (2.0, 4.0)
    for run, spec in ((small, specs[small.id]), (big, specs[big.id])):
        assert spec.name == container_name(world.services.settings.agent_prefix, run.id)
        assert spec.settings["PREFECT__FLOW_RUN_ID"] == run.id
        assert spec.revision_id == revision and spec.queue == PER_RUN_QUEUE
        # .env values and the Prefect key are secure values; nothing secret is plain
        assert spec.env["API_TOKEN"] == "s3cr3t-token-value" and spec.env["PREFECT_API_KEY"]
        plain = json.dumps(spec.settings)
        assert "s3cr3t-token-value" not in plain and "pnu_secret_key" not in plain
        assert spec.entrypoint[0] == "/usr/bin/tini"  # Prefect's image's ENTRYPOINT, put back
    assert specs[small.id].settings[RUN_MEMORY_ENV] == str(int(0.5 * 1024**3))
    assert {world.orchestrator.runs[i].state for i in (small.id, big.id)} == {"RUNNING"}  # in them
    # nothing secret reached Prefect's objects either
    assert "s3cr3t" not in json.dumps(list(world.orchestrator.deployments.values()), default=str)
    # a second tick starts nothing twice
    assert tick(world.services).started == []
    assert len(containers(world)) == 2


def test_ended_containers_are_removed_and_a_run_whose_container_died_is_crashed_saying_why(
        world: World) -> None:
    revision = deployed(world)
    world.orchestrator.run_seconds = 3600  # they end when the test says
    runs = [world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello",
                                       version=revision) for _ in range(4)]
    tick(world.services)
    done, killed, cancelled, running = runs
    names = {s.flow_run_id: s.name for s in containers(world)}
    done.state = "COMPLETED"
    world.runtime.kill(names[done.id])  # its process ended after the run did
    killed.state = "RUNNING"
    said = {"flow_run": killed.id, "pid": 7, "used": 858993459, "limit": 536870912}
    world.runtime.answers[names[killed.id]] = ["DEPLOYER-LIMIT " + json.dumps(said)]
    world.runtime.kill(names[killed.id])
    cancelled.state = "CANCELLING"
    running.state = "RUNNING"
    world.clock.sleep(world.runtime.expected_start_seconds)  # containers are read that often
    report = tick(world.services)
    assert sorted(report.removed) == sorted(names[r.id] for r in (done, killed, cancelled))
    assert report.crashed == [killed.id] and report.cancelled == [cancelled.id]
    assert (done.state, killed.state, cancelled.state, running.state) == (
        "COMPLETED", "CRASHED", "CANCELLED", "RUNNING")
    assert "stopped over its memory limit: it used 0.80 GB of 0.50 GB" in killed.message
    assert [s.flow_run_id for s in containers(world)] == [running.id]


def test_runs_the_dispatcher_cannot_start_are_crashed_naming_why(world: World) -> None:
    revision = deployed(world)
    unknown = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version="nope")
    report = tick(world.services)
    assert unknown.id in report.crashed
    assert "revision nope of module demo is neither serving nor being deployed" in unknown.message
    # claimed, but the dispatcher stopped before starting its container: crashed after a while
    lost = world.orchestrator.add_run(PER_RUN_QUEUE, "PENDING", deployment="hello", version=revision)
    lost.infrastructure = container_name(world.services.settings.agent_prefix, lost.id)
    assert tick(world.services).crashed == []
    world.clock.sleep(CLAIM_GRACE.total_seconds() + 1)
    lost.started_at = world.clock() - CLAIM_GRACE * 2
    assert tick(world.services).crashed == [lost.id]
    assert "its container never started" in lost.message


def test_a_switch_from_agent_to_run_drains_the_agent_and_moves_its_waiting_runs(world: World) -> None:
    world.run(world.request({"prefect.yaml": yaml(""), "flow.py": FLOWS}))
    agent = world.current_agent()
    in_flight = world.orchestrator.add_run(agent, "RUNNING", deployment="hello")
    in_flight.finishes_at = world.clock() + timedelta(seconds=30)
    waiting = world.orchestrator.add_run(agent, "SCHEDULED", name="later", deployment="hello")
    record = world.run(world.request(per_run()))
    assert record.status is RunStatus.SUCCEEDED, record.error
    # (prefect.yaml is code: without a code store, new code is a new image)
    assert ops(record) == ["build", "check-container", "register", "hold-queue", "commit",
                           "drain", "stop-agent"]
    assert world.runtime.list("demo") == [] and agent in world.runtime.stopped
    assert in_flight.state == "COMPLETED"  # finished on the old agent: not killed
    assert waiting.id not in world.orchestrator.runs
    [moved] = [r for r in world.orchestrator.runs.values() if r.name == "later"]
    assert moved.queue == PER_RUN_QUEUE and moved.state == "SCHEDULED"
    # and back: the runs waiting for a container go to the new agent
    record = world.run(world.request({"prefect.yaml": yaml(""), "flow.py": FLOWS}))
    assert record.status is RunStatus.SUCCEEDED, record.error
    assert "hold-queue" in ops(record) and "start-agent" in ops(record)
    agent = world.current_agent()
    [moved] = [r for r in world.orchestrator.runs.values() if r.name == "later"]
    assert moved.queue == agent
    assert world.orchestrator.deployments[("demo", "hello")]["queue"] == agent
    assert "image" not in world.orchestrator.deployments[("demo", "hello")]["job_variables"]
    assert world.runtime.agents[agent].state is AgentState.RUNNING


def baking(world: World) -> None:
    from dataclasses import replace

    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)


def test_a_baking_revision_whose_runs_fail_goes_back_to_the_previous_one_with_no_agent(
        world: World) -> None:
    baking(world)
    good = deployed(world)
    good_image = world.orchestrator.deployments[("demo", "hello")]["job_variables"]["image"]
    request = world.request({**per_run(), ".env": "GREETING=changed\nAPI_TOKEN=t\n"})
    settled = world.run(request, settled=True)
    assert settled.status is RunStatus.BAKING and ops(settled)[-1] == "bake"
    world.orchestrator.add_run(PER_RUN_QUEUE, "FAILED", name="bad", deployment="hello",
                               version=request.revision.id)
    record = world.run(request)
    assert record.status is RunStatus.ROLLED_BACK, record.error
    assert record.stage("bake").detail["serving"] == "a container per run"  # type: ignore[union-attr]
    doc = world.state.module("demo").value  # type: ignore[union-attr]
    assert doc.current.id == good and doc.agent is None  # type: ignore[union-attr]
    deployment = world.orchestrator.deployments[("demo", "hello")]
    assert (deployment["queue"], deployment["revision"]) == (PER_RUN_QUEUE, good)
    assert deployment["job_variables"]["image"] == good_image  # its runs start from its image
    assert world.runtime.list("demo") == []


def test_a_switch_to_run_whose_runs_fail_hands_back_to_the_agent_kept_ready(world: World) -> None:
    baking(world)
    world.run(world.request({"prefect.yaml": yaml(""), "flow.py": FLOWS}))
    agent = world.current_agent()
    request = world.request(per_run())
    assert world.run(request, settled=True).status is RunStatus.BAKING
    assert world.runtime.running("demo") == [agent]  # kept ready, its queue paused
    world.orchestrator.add_run(PER_RUN_QUEUE, "CRASHED", name="bad", deployment="hello",
                               version=request.revision.id)
    record = world.run(request)
    assert record.status is RunStatus.ROLLED_BACK, record.error
    assert world.current_agent() == agent and world.runtime.running("demo") == [agent]
    deployment = world.orchestrator.deployments[("demo", "hello")]
    assert deployment["queue"] == agent and "image" not in deployment["job_variables"]
    assert world.orchestrator.pool_queues["demo"][agent] is False


def test_runs_of_modules_another_installation_owns_are_left_alone(world: World) -> None:
    """Two installations may share a Prefect workspace: a per-run queue of a pool that is not
    one of this installation's modules is not this dispatcher's to start or to crash."""
    deployed(world)
    theirs = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="elsewhere", version="x")
    world.orchestrator.deployments[("other", "elsewhere")] = {
        "queue": PER_RUN_QUEUE, "revision": "x", "flow": "f", "job_variables": {"image": "i"}}
    stuck = world.orchestrator.add_run(PER_RUN_QUEUE, "PENDING", deployment="elsewhere", version="x")
    stuck.started_at = world.clock() - CLAIM_GRACE * 2
    report = tick(world.services)
    assert report.started == [] and report.crashed == []
    assert (theirs.state, stuck.state) == ("SCHEDULED", "PENDING")


def test_status_and_the_dashboard_say_the_runs_get_containers_and_how_many_run(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    from deployer.dashboard import dashboard_data, render

    revision = deployed(world)
    world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    tick(world.services)
    code, out, _ = cli("status")
    assert code == 0 and "a container per run" in out and "1 running" in out
    code, out, _ = cli("status", "--json")
    [module] = json.loads(out)["modules"]
    assert module["containers"] == 1 and module["state"]["current"]["isolation"] == "run"
    assert module["agents"] == []
    assert "a container per run (1 running)" in render(dashboard_data(world.services))


def test_a_running_run_whose_container_is_gone_is_crashed(world: World) -> None:
    revision = deployed(world)
    run = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    world.orchestrator.run_seconds = 3600
    tick(world.services)
    assert run.state == "RUNNING"
    [name] = [s.name for s in containers(world)]
    world.runtime.stop(name)  # deleted by someone
    run.started_at = world.clock() - CLAIM_GRACE * 2
    assert tick(world.services).crashed == [run.id]
    assert "its container is gone" in run.message


def test_the_cleanup_removes_the_containers_the_dispatcher_left_and_the_next_tick_crashes_their_runs(
        world: World) -> None:
    from deployer.pipeline.cleanup import run_cleanup
    from deployer.ports.agents import AgentSpec
    from deployer.ports.images import Image

    revision = deployed(world)
    world.orchestrator.run_seconds = 3600
    ended, going = (world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello",
                                               version=revision) for _ in range(2))
    tick(world.services)
    names = {s.flow_run_id: s.name for s in containers(world)}
    world.runtime.kill(names[ended.id])  # ended while the dispatcher was not looking
    world.runtime.start(AgentSpec("agent-demo-20261128060000-check", "demo", revision, Image("i", ""),
                                  "demo", PER_RUN_QUEUE, {}, role=Role.CHECK))  # a check left over
    plan = run_cleanup(world.services, dry_run=True)
    planned = {i.target: i for i in plan.items if i.kind == "container"}
    assert set(planned) == {names[ended.id], names[going.id], "agent-demo-20261128060000-check"}
    report = run_cleanup(world.services)
    deleted = {i.target for i in report.items if i.outcome == "deleted" and i.kind == "container"}
    assert deleted == {names[ended.id], "agent-demo-20261128060000-check"}
    assert [s.flow_run_id for s in containers(world)] == [going.id]
    ended.started_at = world.clock() - CLAIM_GRACE * 2
    assert tick(world.services).crashed == [ended.id] and going.state == "RUNNING"


def test_remove_with_force_stops_the_runs_containers_too(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    revision = deployed(world)
    world.orchestrator.run_seconds = 3600
    run = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    tick(world.services)
    code, _, err = cli("remove", "demo")
    assert code != 0 and "in flight" in err and len(containers(world)) == 1  # refused: nothing stops
    code, _, err = cli("remove", "demo", "--force")
    assert code == 0, err
    assert containers(world) == [] and run.state == "CRASHED"


def test_deploy_dry_run_shows_no_agent_and_each_runs_container(world: World, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.builders import module_files, write_module

    root = write_module(tmp_path, "demo", module_files("demo", per_run()))
    code, out, _ = cli("deploy", str(root), "--dry-run")
    assert code == 0, out
    assert "no agent: each flow run gets a container of its own" in out
    assert "runs of hello: 1 vCPU, 0.5 GB each" in out and "runs of big: 2 vCPU, 4 GB each" in out
    assert "check-container" in out or "check in a container of its own" in out
    code, out, _ = cli("deploy", str(root), "--dry-run", "--json")
    sizes = json.loads(out)["sizes"]
    assert sizes["agent"] is None and sizes["runs"]["big"] == {"cpu": 2.0, "memory_gb": 4.0, "container": True}


def test_a_declared_smoke_run_runs_in_a_container_of_its_own_before_the_commit(world: World) -> None:
    """The smoke run waits on the per-run queue like any run: the dispatcher gives it a container
    of the new revision's image (not serving yet: the request's own revision)."""
    deployed(world)
    smoked = yaml().replace("    entrypoint: flow.py:hello\n",
                            "    entrypoint: flow.py:hello\n    deployer: {smoke: true}\n")
    request = world.request({"prefect.yaml": smoked, "flow.py": FLOWS})
    world.submit(request)

    def done() -> bool:
        tick(world.services)  # the function app's timer, between the request's steps
        return world.record(request).status.finished

    world.pump(until=done)
    record = world.record(request)
    assert record.status is RunStatus.SUCCEEDED, record.error
    assert "smoke-run" in ops(record) and ops(record).index("smoke-run") < ops(record).index("commit")
    run_id = record.stage("smoke-run hello").detail["run_id"]  # type: ignore[union-attr]
    [spec] = [s for s in world.runtime.started_specs if s.flow_run_id == run_id]
    assert spec.revision_id == request.revision.id


def one_running(world: World):  # type: ignore[no-untyped-def]
    """A deployed module and one run of it, started in its container, that goes on."""
    revision = deployed(world)
    world.orchestrator.run_seconds = 3600
    run = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    tick(world.services)
    return revision, run


def test_a_run_awaiting_a_retry_in_its_container_is_left_there_and_one_retried_later_gets_a_new_one(
        world: World) -> None:
    _, run = one_running(world)
    first = container_name(world.services.settings.agent_prefix, run.id)
    run.state, run.run_count = "SCHEDULED", 1  # AwaitingRetry: its engine waits in the container
    assert tick(world.services).started == [] and [s.name for s in containers(world)] == [first]
    world.runtime.kill(first)  # it ended after all; a retry asked from the Prefect UI comes later
    world.clock.sleep(world.runtime.expected_start_seconds)
    run.state = "SCHEDULED"
    report = tick(world.services)
    assert report.started == [run.id] and first in report.removed
    assert [s.name for s in containers(world)] == [f"{first}-1"]


def test_a_run_left_paused_by_its_process_is_not_a_crash_and_a_paused_queue_starts_nothing(
        world: World) -> None:
    revision, run = one_running(world)
    run.state = "PAUSED"  # suspend_flow_run: the process exits 0, the run waits to be resumed
    world.runtime.kill(container_name(world.services.settings.agent_prefix, run.id))
    world.clock.sleep(world.runtime.expected_start_seconds)
    report = tick(world.services)
    assert report.crashed == [] and run.state == "PAUSED" and containers(world) == []
    world.orchestrator.pause_queue("demo", PER_RUN_QUEUE)  # paused in the Prefect UI
    waiting = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    assert tick(world.services).started == [] and waiting.state == "SCHEDULED"
    world.orchestrator.resume_queue("demo", PER_RUN_QUEUE)
    assert tick(world.services).started == [waiting.id]


def test_a_runs_own_job_variables_cannot_change_the_image_its_container_starts_from() -> None:
    from deployer.adapters.prefect_per_run import _merged

    merged = _merged({"image": "registry/demo:1", "memory": 1, "env": {"A": "1"}},
                     {"image": "evil/image:latest", "memory": 2, "env": {"B": "2"}})
    assert merged == {"image": "registry/demo:1", "memory": 2, "env": {"A": "1", "B": "2"}}
