"""`deployer remove`: a module out of service, its history kept; refused when that would end
runs or race a deploy; a dry run changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from deployer.errors import NotFound
from deployer.models import Claim, Intent, RequestKind, RunStatus
from deployer.pipeline.remove import RemoveRefused, remove_module
from tests.unit.pipeline_world import World


def deployed(world: World) -> str:
    world.run(world.request())
    return world.current_agent()


def test_remove_stops_agents_removes_deployments_and_queues_and_keeps_history(world: World) -> None:
    agent = deployed(world)
    removal = remove_module(world.services, "demo")
    assert removal.agents == (agent,) and removal.deployments == ("demo/hello",) and agent in removal.queues
    assert world.runtime.running("demo") == []
    assert [k for k in world.orchestrator.deployments if k[0] == "demo"] == []
    assert set(world.orchestrator.pool_queues.get("demo", {})) <= {"default"}
    state = world.state.module("demo").value  # type: ignore[union-attr]
    assert state.current is None and state.agent is None
    deploy, removed = world.state.history("demo")  # history stays: a later deploy or rollback works
    assert (removed.kind, removed.outcome, removed.request_id) == (RequestKind.REMOVE, RunStatus.REMOVED, removal.request_id)
    assert removed.revision.id == deploy.revision.id and state.request_id == ""  # nothing is current
    again = world.run(world.request())
    assert again.status.value == "succeeded" and world.runtime.running("demo") == [world.current_agent()]
    assert again.stage("plan").detail["path"] == "first"  # type: ignore[union-attr]
    assert world.state.module("demo").value.removed is None  # type: ignore[union-attr]


def test_a_request_made_before_the_removal_never_brings_the_module_back(world: World) -> None:
    """An upload whose blob event arrives after the remove (the host was down; Event Grid retries
    for hours) ends superseded by the removal, saying so; a later upload deploys as a first."""
    deployed(world)
    late = world.request({".env": "GREETING=late\n"})  # uploaded now, its event not yet handled
    world.clock.now += timedelta(seconds=5)
    removal = remove_module(world.services, "demo")
    record = world.run(late)
    assert record.status is RunStatus.SUPERSEDED and record.superseded_by == removal.request_id
    assert record.error["code"] == "superseded_by_removal" and "was removed" in record.error["message"]  # type: ignore[index]
    assert world.runtime.running("demo") == [] and world.state.module("demo").value.current is None  # type: ignore[union-attr]
    assert world.state.history("demo")[-1].outcome is RunStatus.SUPERSEDED
    newer = world.run(world.request())
    assert newer.status is RunStatus.SUCCEEDED and newer.stage("plan").detail["path"] == "first"  # type: ignore[union-attr]


def test_removing_a_module_during_its_bake_ends_the_bake_as_removed(world: World) -> None:
    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)
    deployed(world)
    request = world.request({".env": "GREETING=new\n"})
    assert world.run(request, settled=True).status is RunStatus.BAKING
    removal = remove_module(world.services, "demo")
    assert world.runtime.running("demo") == []  # both the new and the kept previous agent
    record = world.run(request)
    assert record.status is RunStatus.REMOVED and record.stage("bake").detail["by"] == removal.request_id  # type: ignore[union-attr]
    assert [op["op"] for op in record.plan][-1] == "bake"  # nothing left to drain or stop
    history = world.state.history("demo")
    assert [(e.request_id, e.outcome) for e in history[-2:]] == [
        (removal.request_id, RunStatus.REMOVED), (request.request_id, RunStatus.REMOVED)]
    doc = world.state.module("demo").value  # type: ignore[union-attr]
    assert doc.current is None and doc.baking is None and doc.request_id == ""


def test_a_dry_run_changes_nothing(world: World) -> None:
    agent = deployed(world)
    removal = remove_module(world.services, "demo", dry_run=True)
    assert removal.dry_run and removal.agents == (agent,)
    assert world.runtime.running("demo") == [agent] and ("demo", "hello") in world.orchestrator.deployments


def test_runs_in_flight_refuse_the_removal_unless_forced(world: World) -> None:
    agent = deployed(world)
    run = world.orchestrator.add_run(agent, "RUNNING", name="long-run")
    with pytest.raises(RemoveRefused, match="1 flow run\\(s\\) of demo are in flight: long-run"):
        remove_module(world.services, "demo")
    assert world.runtime.running("demo") == [agent]  # nothing changed
    removal = remove_module(world.services, "demo", force=True)
    assert removal.crashed == (run.id,) and world.orchestrator.runs[run.id].state == "CRASHED"


def test_a_module_being_deployed_is_not_removed(world: World) -> None:
    deployed(world)
    got = world.state.module("demo")
    assert got is not None
    owner = Claim("req-busy", RequestKind.DEPLOY, Intent(got.value.updated_at), got.value.updated_at)
    world.state.save_module(replace(got.value, owner=owner), got.etag)
    with pytest.raises(RemoveRefused, match="being deployed by request req-busy"):
        remove_module(world.services, "demo")


def test_an_unknown_module_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        remove_module(world.services, "nope")
