"""Per-module order without a lease held across waits: a busy module makes requests wait (never
fail), the newest intent wins, older requests end superseded; registry pushes alike."""

from __future__ import annotations

import json
from datetime import timedelta

from deployer.models import Claim, Intent, ModuleState, RequestKind, RunStatus
from deployer.pipeline.webhook import TOKEN_HEADER, receive_webhook
from deployer.ports.images import Image
from tests.unit.pipeline_world import WEBHOOK_TOKEN, World
from tests.unit.test_webhook_and_rollback import DATA

CHANGES = [{".env": f"GREETING=v{n}\n"} for n in range(6)]


def statuses(world: World, requests) -> list[RunStatus]:  # type: ignore[no-untyped-def]
    return [world.record(r).status for r in requests]


def test_a_request_for_a_busy_module_waits_and_says_for_whom_then_runs(world: World) -> None:
    world.run(world.request())
    world.builder.looks_to_build = 10  # the first request's build takes a while
    first = world.request({"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 5\n"})
    second = world.request(CHANGES[1])
    world.submit(first)
    world.trigger.pump(until=lambda: world.record(first).waiting is not None)
    world.submit(second)
    world.trigger.pump(until=lambda: world.record(second).status is RunStatus.WAITING)
    waiting = world.record(second)
    assert waiting.waiting is not None and waiting.waiting.on == first.request_id
    assert f"busy with request {first.request_id}" in waiting.waiting.what
    state = world.state.module("demo").value  # type: ignore[union-attr]
    assert state.owner.request_id == first.request_id  # type: ignore[union-attr]
    assert [c.request_id for c in world.state.pending("demo")] == sorted([first.request_id, second.request_id])
    world.pump()
    assert statuses(world, [first, second]) == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert world.state.module("demo").value.current.id == second.revision.id  # type: ignore[union-attr]
    assert world.queue.poison == [] and not any(i.failed for i in world.trigger.invocations)
    # the owner woke the waiter when it let go: it did not wait for its fallback look
    wait = world.record(second).stage("wait")
    commit = world.record(first).stage("commit")
    assert wait.finished_at - commit.finished_at < timedelta(seconds=5)  # type: ignore[union-attr,operator]


def test_five_uploads_at_once_deploy_only_the_newest(world: World) -> None:
    world.run(world.request())
    requests = [world.request(CHANGES[n]) for n in range(1, 6)]
    for request in reversed(requests):  # messages in the opposite order of the uploads
        world.submit(request)
    world.pump()
    assert statuses(world, requests) == [RunStatus.SUPERSEDED] * 4 + [RunStatus.SUCCEEDED]
    assert {world.record(r).superseded_by for r in requests[:4]} == {requests[-1].request_id}
    assert world.state.module("demo").value.current.id == requests[-1].revision.id  # type: ignore[union-attr]
    assert len(world.runtime.started) == 2 and len(world.runtime.running("demo")) == 1
    superseded = [e for e in world.state.history("demo") if e.outcome is RunStatus.SUPERSEDED]
    assert len(superseded) == 4


def test_uploads_during_a_rotation_run_only_the_newest_afterwards(world: World) -> None:
    world.run(world.request())
    world.builder.looks_to_build = 8
    rotating = world.request({"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 7\n"})
    world.submit(rotating)
    world.trigger.pump(until=lambda: world.record(rotating).waiting is not None)
    later = [world.request(CHANGES[n]) for n in range(1, 5)]
    for request in later:
        world.submit(request)
    world.pump()
    assert world.record(rotating).status is RunStatus.SUCCEEDED  # a started rotation finishes
    assert statuses(world, later) == [RunStatus.SUPERSEDED] * 3 + [RunStatus.SUCCEEDED]
    assert world.state.module("demo").value.current.id == later[-1].revision.id  # type: ignore[union-attr]
    assert world.state.pending("demo") == []


def test_an_older_upload_whose_message_comes_late_is_superseded(world: World) -> None:
    older = world.request(CHANGES[1])
    newer = world.request(CHANGES[2])
    assert world.run(newer).status is RunStatus.SUCCEEDED
    record = world.run(older)
    assert record.status is RunStatus.SUPERSEDED and record.superseded_by == newer.request_id
    assert world.state.module("demo").value.current.id == newer.revision.id  # type: ignore[union-attr]


def test_an_owner_whose_request_finished_without_letting_go_is_not_waited_for(world: World) -> None:
    world.run(world.request())
    gone = world.request(CHANGES[1])
    world.submit(gone)
    got = world.state.run("demo", gone.request_id)
    from dataclasses import replace
    world.state.save_run(replace(got.value, status=RunStatus.FAILED), got.etag)  # type: ignore[union-attr]
    doc = world.state.module("demo")
    claim = Claim(gone.request_id, RequestKind.DEPLOY, Intent(world.clock.now - timedelta(hours=1)), world.clock.now)
    world.state.save_module(replace(doc.value, owner=claim), doc.etag)  # type: ignore[union-attr]
    record = world.run(world.request(CHANGES[2]))
    assert record.status is RunStatus.SUCCEEDED


def test_intent_orders_by_time_then_tiebreak() -> None:
    from datetime import UTC, datetime

    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert Intent(t, "b").newer_than(Intent(t, "a"))
    assert Intent(t + timedelta(seconds=1), "a").newer_than(Intent(t, "z"))
    assert not Intent(t, "a").newer_than(Intent(t, "a"))
    assert ModuleState("m").owner is None


# -- registry pushes -----------------------------------------------------------------------------


def push(world: World, digest: str, event: str) -> None:
    doc = json.loads((DATA / "acr_push.json").read_text())
    doc["id"] = event
    doc["timestamp"] = (world.clock.now).isoformat().replace("+00:00", "Z")
    doc["target"].update({"repository": "prefect-flows/demo", "digest": digest, "tag": event})
    reply = receive_webhook(world.services, "POST", {TOKEN_HEADER: WEBHOOK_TOKEN}, json.dumps(doc).encode())
    assert reply.status in (200, 202), reply.body
    world.clock.now += timedelta(seconds=1)


def image(world: World, digest: str, tag: str) -> None:
    base = next(iter(world.builder.images.values()))
    world.builder.images[("demo", tag)] = Image(f"registry/demo:{tag}", base.working_dir, digest)


def test_the_last_push_serves_at_the_end_even_when_it_was_current_when_pushed(world: World) -> None:
    world.run(world.request())
    a = world.state.module("demo").value.current.image_digest  # type: ignore[union-attr]
    b, c = "sha256:" + "bb" * 32, "sha256:" + "cc" * 32
    image(world, b, "pb")
    image(world, c, "pc")
    original = world.orchestrator.online_workers
    online_from = world.clock.now + timedelta(seconds=45)  # slower than a slice

    def slow_online(pool):  # type: ignore[no-untyped-def]
        return original(pool) if world.clock.now >= online_from else set()

    world.orchestrator.online_workers = slow_online  # type: ignore[method-assign]
    push(world, b, "pb")  # rotates; slow to come ONLINE
    world.trigger.pump(until=lambda: any(r.kind is RequestKind.REDEPLOY and r.waiting is not None
                                         for r in world.state.runs("demo")))
    push(world, c, "pc")  # waits
    push(world, a, "pa")  # the image that is current right now: still the last push
    world.pump()
    runs = {r.trigger.detail["tag"]: r for r in world.state.runs("demo") if r.kind is RequestKind.REDEPLOY}
    assert runs["pb"].status is RunStatus.SUCCEEDED
    assert runs["pc"].status is RunStatus.SUPERSEDED and runs["pc"].superseded_by == runs["pa"].request_id
    assert runs["pa"].status is RunStatus.SUCCEEDED
    assert world.state.module("demo").value.current.image_digest == a  # type: ignore[union-attr]
    assert len(world.runtime.running("demo")) == 1
