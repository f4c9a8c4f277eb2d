"""`deployer remove`: a module out of service, its history kept; refused when that would end
runs or race a deploy; a dry run changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deployer.errors import NotFound
from deployer.models import Claim, Intent, RequestKind
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
    assert len(world.state.history("demo")) == 1  # history stays: a later deploy or rollback works
    again = world.run(world.request())
    assert again.status.value == "succeeded" and world.runtime.running("demo") == [world.current_agent()]


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
