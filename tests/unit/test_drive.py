"""The CLI drives the same steps from its own process: transient failures are retried there,
and a CLI that dies half-way leaves the request to the queue trigger, never abandoned."""

from __future__ import annotations

import pytest

from deployer.models import RunStatus
from deployer.rotation.drive import drive
from tests.fakes.platform import transient
from tests.unit.pipeline_world import World


def test_the_cli_retries_a_transient_failure_itself_and_finishes(world: World) -> None:
    world.run(world.request())
    request = world.request({".env": "GREETING=cli\n"})
    world.submit(request)
    world.orchestrator.fail_next["register"] = transient("Prefect is restarting")
    notes: list[str] = []

    class Notes:
        def stage(self, *args: object) -> None: ...

        def note(self, message: str) -> None:
            notes.append(message)

    record = drive(world.services, "demo", request.request_id, progress=Notes(),
                   until=lambda r: r.status.finished)
    assert record.status is RunStatus.SUCCEEDED
    assert any("trying again in 2s (attempt 1 of 5)" in n for n in notes)
    assert world.runtime.running("demo") == [world.current_agent()]


def test_a_cli_that_keeps_failing_ends_the_request_failed_and_rolled_back(world: World) -> None:
    world.run(world.request())
    old = world.current_agent()
    request = world.request({".env": "GREETING=cli\n"})
    world.submit(request)

    def down(*args: object) -> None:
        raise transient("Prefect is down")

    world.orchestrator.online_workers = down  # type: ignore[method-assign,assignment]
    record = drive(world.services, "demo", request.request_id, until=lambda r: r.status.finished)
    assert record.status is RunStatus.FAILED and record.attempts == 5
    assert world.runtime.running("demo") == [old]  # the new agent was removed


def test_a_cli_killed_half_way_leaves_the_request_to_the_queue_trigger(world: World) -> None:
    world.run(world.request())
    world.builder.looks_to_build = 30  # a long build: the CLI waits between looks
    request = world.request({"requirements.txt": "prefect>=3.4,<4\nsix\n"})
    world.submit(request)
    original = world.clock.sleep

    def ctrl_c_after_a_while(seconds: float) -> None:
        original(seconds)
        if world.clock.slept > 30:
            raise KeyboardInterrupt

    world.services.sleep = ctrl_c_after_a_while  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        drive(world.services, "demo", request.request_id)
    assert world.record(request).status is RunStatus.RUNNING
    world.services.sleep = original  # type: ignore[method-assign]
    world.pump()  # the function app picks it up from the continuation the CLI left on the queue
    record = world.record(request)
    assert record.status is RunStatus.SUCCEEDED and len(world.builder.builds) == 2
