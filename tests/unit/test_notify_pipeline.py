"""The pipeline tells of each request's outcome once, records what became of the notice, and
goes on exactly as before when the notifier fails."""

from __future__ import annotations

from deployer import codec
from deployer.models import RunStatus
from tests.fakes.notifier import Recorder, notify_into
from tests.unit.pipeline_world import World
from tests.unit.test_health_ladder import CHANGE, broken


def test_a_deploy_and_a_failed_deploy_are_each_told_once_and_recorded(world: World) -> None:
    told = notify_into(world, Recorder())
    first = world.run(world.request())
    assert first.status is RunStatus.SUCCEEDED
    world.runtime.preflight = broken
    failed = world.run(world.request(CHANGE))
    assert [n.kind for n in told.notices] == ["deploy.succeeded", "deploy.failed"]
    assert first.notices[0]["kind"] == "deploy.succeeded" and first.notices[0]["ok"] is True
    assert failed.notices[0]["kind"] == "deploy.failed"
    assert "No module named 'pandas'" in told.notices[1].body
    assert "s3cr3t-token-value" not in told.notices[1].body  # redacted as in the record


def test_a_notifier_that_fails_changes_nothing_but_the_record_of_it(world: World) -> None:
    notify_into(world, Recorder(ok=False))
    record = world.run(world.request())
    assert record.status is RunStatus.SUCCEEDED
    assert record.notices == ({"kind": "deploy.succeeded", "at": record.notices[0]["at"], "ok": False,
                               "detail": "timed out after 5 s"},)


def test_an_older_upload_superseded_by_a_newer_one_is_told_with_the_newer_id(world: World) -> None:
    told = notify_into(world, Recorder())
    world.run(world.request())
    older, newer = world.request(CHANGE), world.request({"flow.py": CHANGE["flow.py"] + "\n# newer\n"})
    world.submit(older)
    world.submit(newer)
    world.pump(until=lambda: world.record(newer).status.finished and world.record(older).status.finished)
    superseded = [n for n in told.notices if n.kind == "request.superseded"]
    assert len(superseded) == 1 and newer.request_id in superseded[0].body


def test_without_targets_nothing_is_recorded(world: World) -> None:
    record = world.run(world.request())
    assert record.notices == () and b'"notices":[]' in codec.dumps(record)


def test_a_request_waiting_past_half_an_hour_is_told_of_once(world: World) -> None:
    told = notify_into(world, Recorder())
    world.run(world.request())
    world.builder.looks_to_build = 120  # a build of about an hour (looks back off to 30 s)
    record = world.run(world.request(CHANGE))
    stuck = [n for n in told.notices if n.kind == "request.stuck"]
    assert record.status is RunStatus.SUCCEEDED
    assert len(stuck) == 1 and stuck[0].title.startswith("demo: request waiting 30 min")
    assert "build" in stuck[0].body and [n["kind"] for n in record.notices].count("request.stuck") == 1
