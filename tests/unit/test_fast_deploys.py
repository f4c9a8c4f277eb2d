"""Fast deploys: a code-only change is live without an image build or an agent rotation; the
other parts (dependencies, config) keep their own costs; rollback and history in the same terms."""

from __future__ import annotations

from dataclasses import replace

from deployer.models import RunStatus
from deployer.pipeline.rollback import rollback_request
from tests.unit.pipeline_world import World

CODE = {"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 2\n"}
CODE_AND_CONFIG = {**CODE, ".env": "GREETING=both\n"}
DEPS = {"requirements.txt": "prefect>=3.4,<4\nsix\n"}
CONFIG = {".env": "GREETING=x\n"}


def capable(world: World) -> World:
    world.code.capable = True
    return world


def path(record) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    plan = record.stage("plan").detail
    return plan["path"], plan["changed"]


def test_a_code_only_change_is_a_re_registration_with_no_build_and_no_new_agent(world: World) -> None:
    capable(world)
    world.run(world.request())
    agent = world.current_agent()
    builds, starts = len(world.builder.builds), len(world.runtime.started)
    request = world.request(CODE)
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and path(record) == ("code", ["code"])
    assert [op["op"] for op in record.plan] == ["publish-code", "check-code", "register", "wait-ready", "commit"]
    assert len(world.builder.builds) == builds and len(world.runtime.started) == starts
    assert world.current_agent() == agent and world.runtime.running("demo") == [agent]
    deployment = world.orchestrator.deployments[("demo", "hello")]
    assert deployment["queue"] == agent and deployment["revision"] == request.revision.id
    assert deployment["working_dir"] == f"/code/demo/{request.revision.code_digest[7:19]}"
    # the serving agent's warm checker loaded the new code (no check run, no worker poll)
    [(asked, request_id)] = world.code.asked
    assert asked == agent and world.orchestrator.code_checks == []
    assert record.stage("check-code").detail["run_id"] == request_id  # type: ignore[union-attr]
    assert world.code.checks == {}  # the request was taken away once answered
    assert (world.state.history("demo")[-1].changed, world.state.history("demo")[-1].path) == (("code",), "code")
    assert world.state.module("demo").value.current.id == request.revision.id  # type: ignore[union-attr]


def test_new_code_that_does_not_load_is_refused_and_the_deployments_stay(world: World) -> None:
    capable(world)
    world.run(world.request())
    before = dict(world.orchestrator.deployments[("demo", "hello")])
    world.orchestrator.code_check = lambda pull, eps: [
        {"deployment": n, "ok": False, "entrypoint": e, "exception": "ImportError",
         "message": "cannot import name 'x'", "file": "flow.py", "line": 3} for n, e in eps]
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.FAILED and record.error["code"] == "bundle_invalid"  # type: ignore[index]
    [problem] = record.error["problems"]  # type: ignore[index]
    assert (problem["file"], problem["line"]) == ("flow.py", 3) and "ImportError" in problem["message"]
    assert world.orchestrator.deployments[("demo", "hello")] == before
    assert record.stage("register") is None


def test_a_dependency_change_builds_and_rotates(world: World) -> None:
    capable(world)
    world.run(world.request())
    old = world.current_agent()
    record = world.run(world.request(DEPS))
    assert record.status is RunStatus.SUCCEEDED and path(record) == ("dependencies", ["dependencies", "code"])
    assert len(world.builder.builds) == 2 and world.current_agent() != old


def test_a_config_change_rotates_without_a_build(world: World) -> None:
    capable(world)
    world.run(world.request())
    old = world.current_agent()
    record = world.run(world.request(CONFIG))
    assert path(record) == ("config", ["config"]) and len(world.builder.builds) == 1
    assert world.current_agent() != old


def test_a_change_of_size_starts_an_agent_that_keeps_it_never_a_code_only_change(world: World) -> None:
    """prefect.yaml is code, but a size is the agent's: a module that starts asking for memory
    (or changes it) gets a new agent, with the limiter, from the same image."""
    capable(world)
    world.run(world.request())
    template = ("name: demo\ndeployments:\n  - name: hello\n    entrypoint: flow.py:hello\n"
                "    work_pool:\n      job_variables: {{memory: {}}}\n")
    for memory, agent_memory in ((1, 1.5), (2, 2.5)):  # the run's, and 0.5 GB for the worker
        old = world.current_agent()
        record = world.run(world.request({"prefect.yaml": template.format(memory)}))
        assert path(record) == ("config", ["code", "config"]) and len(world.builder.builds) == 1
        assert world.current_agent() != old
        assert world.runtime.agents[world.current_agent()].spec.memory_gb == agent_memory


def test_a_mixed_change_is_treated_as_its_heaviest_part(world: World) -> None:
    capable(world)
    world.run(world.request())
    old = world.current_agent()
    record = world.run(world.request(CODE_AND_CONFIG))
    assert path(record) == ("config", ["code", "config"]) and len(world.builder.builds) == 1
    assert world.current_agent() != old
    assert world.orchestrator.deployments[("demo", "hello")]["working_dir"].startswith("/code/demo/")


def test_without_a_code_store_a_code_change_builds_and_rotates_and_says_why(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.SUCCEEDED and len(world.builder.builds) == 2
    assert world.current_agent() != old
    assert "deploy the slow way" in record.stage("plan").detail["why"]  # type: ignore[union-attr]


def test_a_rollback_across_a_code_only_change_changes_no_agent(world: World) -> None:
    capable(world)
    first = world.run(world.request())
    agent = world.current_agent()
    world.run(world.request(CODE))
    request = rollback_request(world.services, "demo")
    assert request.revision.id == first.revision.id  # type: ignore[union-attr]
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and path(record)[0] == "code"
    assert world.current_agent() == agent and world.runtime.started == [agent]
    assert world.orchestrator.deployments[("demo", "hello")]["revision"] == first.revision.id  # type: ignore[union-attr]


def test_a_bad_code_only_revision_is_rolled_back_the_same_way_on_the_same_agent(world: World) -> None:
    capable(world)
    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)
    good = world.run(world.request())
    agent = world.current_agent()
    world.orchestrator.add_run(agent, "COMPLETED", name="good", version=good.revision.id)  # type: ignore[union-attr]
    request = world.request(CODE)
    assert world.run(request, settled=True).status is RunStatus.BAKING
    world.orchestrator.add_run(agent, "FAILED", name="bad", version=request.revision.id)
    record = world.run(request)
    assert record.status is RunStatus.ROLLED_BACK
    assert world.current_agent() == agent and world.runtime.running("demo") == [agent]
    assert world.orchestrator.deployments[("demo", "hello")]["revision"] == good.revision.id  # type: ignore[union-attr]
    assert world.orchestrator.pool_queues["demo"][agent] is False  # never paused: it serves on
    assert [r.revision_id for r in world.state.module("demo").value.refused] == [request.revision.id]  # type: ignore[union-attr]


def test_the_code_is_published_once_and_never_holds_env(world: World) -> None:
    capable(world)
    world.run(world.request())
    request = world.request(CODE)
    world.run(request)
    assert world.code.published == [("demo", world.state.history("demo")[0].revision.code_digest[7:19]),
                                    ("demo", request.revision.code_digest[7:19])]
    for files in world.code.stored.values():
        assert ".env" not in files and "_deployer_check.py" in files
        assert all(b"s3cr3t-token-value" not in data for data in files.values())


def test_a_push_of_an_image_we_built_runs_the_code_baked_into_it_not_the_code_store(world: World) -> None:
    from deployer.pipeline.webhook import image_tag
    from tests.unit.test_webhook_and_rollback import acr_push, post, queued

    capable(world)
    first = world.run(world.request())
    world.run(world.request(CODE))  # same image, its code from the store
    world.run(world.request(DEPS))  # a new image
    built = world.builder.find("demo", first.revision.deps_digest)  # type: ignore[union-attr]
    assert built is not None
    reply = post(world, acr_push(tag=image_tag(built.ref), digest=built.digest))
    assert reply.status == 202, reply.body
    [request] = queued(world)
    assert request.revision.code_digest == first.revision.code_digest  # type: ignore[union-attr]
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and record.stage("publish-code") is None
    deployment = world.orchestrator.deployments[("demo", "hello")]
    assert deployment["working_dir"] == built.working_dir  # the image's own code


def test_with_fast_deploys_off_a_code_change_builds_and_rotates_and_says_so(world: World) -> None:
    capable(world)
    world.services.settings = replace(world.services.settings, fast_deploys=False)
    world.run(world.request())
    old = world.current_agent()
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.SUCCEEDED and len(world.builder.builds) == 2
    assert world.current_agent() != old and world.code.published == []
    assert "DEPLOYER_FAST_DEPLOYS=off" in record.stage("plan").detail["why"]  # type: ignore[union-attr]
    assert record.stage("plan").detail["path"] == "code-rebuild"  # type: ignore[union-attr]


def test_a_code_only_revision_can_be_rolled_back_to_later_it_is_recorded_with_its_image(world: World) -> None:
    capable(world)
    world.run(world.request())
    middle = world.request(CODE)
    world.run(middle)
    world.run(world.request({"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 3\n"}))
    entry = next(e for e in world.state.history("demo") if e.request_id == middle.request_id)
    assert entry.revision.image and entry.revision.image == world.state.history("demo")[0].revision.image
    request = rollback_request(world.services, "demo", middle.revision.id)
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED, record.error
    assert world.orchestrator.deployments[("demo", "hello")]["revision"] == middle.revision.id


def test_the_check_run_is_waited_for_on_the_queue_not_inside_an_invocation(world: World) -> None:
    capable(world)
    # a 1 s poll: the expected wait (4 s) is short enough that it would otherwise be slept inline
    world.services.settings = replace(world.services.settings, worker_poll_seconds=1)
    world.run(world.request())
    without_checker(world)
    slept, delays = world.clock.slept, len(world.queue.delays)
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.SUCCEEDED
    expected = world.services.settings.worker_poll_seconds + 3  # a poll, then a process start
    assert expected in world.queue.delays[delays:]  # the continuation after the check run started
    assert world.clock.slept - slept < expected  # what was slept inline is less than that wait


def test_an_agent_whose_checker_does_not_answer_gets_a_check_run_instead(world: World) -> None:
    capable(world)
    world.run(world.request())
    agent = world.current_agent()
    world.runtime.silent.add(agent)  # its checker died
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.SUCCEEDED
    assert record.stage("check-code").detail["fallback"] is True  # type: ignore[union-attr]
    [check] = world.orchestrator.code_checks
    assert check[1] == agent and world.code.checks == {}


def without_checker(world: World) -> None:
    """The serving agent as an older deployer started it: no warm checker (its state says so)."""
    got = world.state.module("demo")
    assert got is not None and got.value.agent is not None and got.value.agent.checks
    world.state.save_module(replace(got.value, agent=replace(got.value.agent, checks=False)), got.etag)


def test_the_warm_check_is_done_inside_the_invocation_with_no_poll_to_wait_for(world: World) -> None:
    capable(world)
    world.run(world.request())
    delays = len(world.queue.delays)
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.SUCCEEDED and record.steps == 1  # one invocation, start to live
    assert world.queue.delays[delays:] == [0]  # only the request's own first message


def test_an_agent_started_without_a_checker_is_checked_by_a_run(world: World) -> None:
    """Agents started by an older deployer have no warm checker: their state says so."""
    capable(world)
    world.run(world.request())
    without_checker(world)
    record = world.run(world.request(CODE))
    assert record.status is RunStatus.SUCCEEDED and world.code.asked == []
    assert len(world.orchestrator.code_checks) == 1
    assert [op["warm"] for op in record.plan if op["op"] == "check-code"] == [False]


def test_a_code_only_revision_whose_bake_a_newer_deploy_ended_is_recorded_with_its_image(world: World) -> None:
    """With a bake window, the middle revision's history entry is written when the next deploy
    ends its bake (superseded), when the module already serves the next one."""
    capable(world)
    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)
    world.run(world.request())
    middle = world.request(CODE)
    assert world.run(middle, settled=True).status is RunStatus.BAKING
    world.run(world.request({"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 3\n"}),
              settled=True)
    world.pump(until=lambda: any(e.request_id == middle.request_id for e in world.state.history("demo")))
    entry = next(e for e in world.state.history("demo") if e.request_id == middle.request_id)
    assert entry.revision.image and entry.revision.image == world.state.history("demo")[0].revision.image
    assert rollback_request(world.services, "demo", middle.revision.id).revision.id == middle.revision.id


def test_a_code_only_revision_recorded_without_an_image_rolls_back_to_the_image_of_its_dependencies(
        world: World) -> None:
    """History written before the image was recorded: the image built from the same
    dependencies is the one it ran in."""
    capable(world)
    world.run(world.request())
    middle = world.request(CODE)
    world.run(middle)
    world.run(world.request({"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 3\n"}))
    history = world.state.history("demo")
    history[1] = replace(history[1], revision=replace(history[1].revision, image="", image_digest=""))
    world.state.history = lambda module: history  # type: ignore[method-assign]
    request = rollback_request(world.services, "demo", middle.revision.id)
    assert request.revision.image == history[0].revision.image
