"""Push webhooks (ACR and Event Grid), redeploys and rollbacks, against the pipeline's fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployer.errors import NotFound
from deployer.models import Request, RequestKind, RunStatus, StageStatus
from deployer.pipeline.rollback import rollback_request
from deployer.pipeline.webhook import TOKEN_HEADER, receive_webhook
from deployer.ports.images import Image
from deployer.webhooks import Ping, Push, Validation, WebhookInvalid, parse
from tests.fakes.azure.swagger import spec_path
from tests.unit.pipeline_world import WEBHOOK_TOKEN, World

DATA = Path(__file__).resolve().parents[1] / "data" / "webhooks"
SPECS = spec_path("eventgrid-acr/2018-01-01/examples/event-grid-schema/image_pushed.json").parents[1]
AUTH = {TOKEN_HEADER: WEBHOOK_TOKEN}
PUSHED = "sha256:" + "ab" * 32


def acr_push(repository: str = "prefect-flows/demo", digest: str = PUSHED, tag: str = "v2",
             event_id: str = "evt-1") -> bytes:
    doc = json.loads((DATA / "acr_push.json").read_text())
    doc["id"] = event_id
    doc["target"].update({"repository": repository, "digest": digest, "tag": tag})
    return json.dumps(doc).encode()


def eventgrid_push(digest: str = PUSHED, cloud_events: bool = False) -> bytes:
    name = "cloud-events-schema" if cloud_events else "event-grid-schema"
    doc = json.loads((SPECS / name / "image_pushed.json").read_text())
    doc["data"]["target"].update({"repository": "prefect-flows/demo", "digest": digest, "tag": "eg"})
    doc["data"]["timestamp"] = datetime.now(UTC).isoformat()  # the example's is from 2021
    return json.dumps(doc if cloud_events else [doc]).encode()


def registry_has(world: World, module: str, digest: str = PUSHED, tag: str = "v2") -> None:
    """Someone pushed an image of ``module`` to the registry (outside the pipeline)."""
    base = next(img for (m, _), img in world.builder.images.items() if m == module)
    world.builder.images[(module, f"pushed-{digest[-6:]}")] = Image(
        ref=f"registry/{module}:{tag}", working_dir=base.working_dir, digest=digest)


def queued(world: World) -> list[Request]:
    """Requests submitted (by the webhook) that no step has taken up yet."""
    return [r.as_request() for r in world.state.runs() if r.status is RunStatus.QUEUED]


def post(world: World, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"):  # type: ignore[no-untyped-def]
    return receive_webhook(world.services, method, AUTH if headers is None else headers, body)


def deployed(world: World) -> World:
    assert world.run(world.request()).status is RunStatus.SUCCEEDED
    return world


# -- parsing -------------------------------------------------------------------------------------


def test_recorded_acr_push_and_ping_parse() -> None:
    [push] = parse((DATA / "acr_push.json").read_bytes())
    assert push == Push("cb8c3971-9adc-488b-xxxx-43cbb4974ff5", "prefect-flows/finance", "v2",
                        "sha256:8d57b3b6d8e7c1c1b0e8f1a4c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8", "acr-webhook",
                        datetime(2026, 11, 28, 6, 10, 0, 123456, tzinfo=UTC))
    assert parse((DATA / "acr_ping.json").read_bytes()) == [Ping("b3b7e6e8-4e1e-4f8e-9c2d-3f0e3a1d5c77")]


def test_event_grid_examples_from_the_published_spec_parse() -> None:
    for schema in ("event-grid-schema", "cloud-events-schema"):
        raw = (SPECS / schema / "image_pushed.json").read_bytes()
        [push] = parse(raw)
        assert isinstance(push, Push) and push.repository == "samples/nginx" and push.source == "eventgrid"
        deleted = parse((SPECS / schema / "image_deleted.json").read_bytes())
        assert not any(isinstance(e, Push) for e in deleted)
    assert parse((DATA / "eventgrid_validation.json").read_bytes()) == [
        Validation("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"[1, 2]", b'{"id": "x"}',
                                  b'{"action": "push"}', b'{"action": "push", "target": {"repository": "r"}}'])
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(WebhookInvalid):
        parse(body)


# -- the endpoint --------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {TOKEN_HEADER: "wrong"}, {TOKEN_HEADER: WEBHOOK_TOKEN + "x"}])
def test_absent_or_spoofed_secret_is_401_and_nothing_is_queued(world: World, headers: dict[str, str]) -> None:
    deployed(world)
    reply = post(world, acr_push(), headers)
    assert reply.status == 401 and queued(world) == []
    assert world.state.runs("demo")[-1].kind is RequestKind.DEPLOY


def test_without_a_configured_token_every_call_is_refused(world: World) -> None:
    from dataclasses import replace

    from deployer.config import Secret

    deployed(world)
    world.services.settings = replace(world.services.settings, webhook_token=Secret(""))
    assert post(world, acr_push(), {TOKEN_HEADER: ""}).status == 401


def test_malformed_json_is_400(world: World) -> None:
    assert post(world, b"{oops").status == 400


def test_a_body_is_parsed_only_after_the_caller_is_authenticated(world: World) -> None:
    assert post(world, b"{oops", headers={}).status == 401
    deep = b"[" * 100_000 + b"]" * 100_000
    assert post(world, deep, headers={}).status == 401
    reply = post(world, deep)
    assert reply.status == 400 and "nests more than 32 levels" in reply.body["error"]
    assert post(world, b'{"a": "' + b"[" * 5000 + b'"}').status == 400  # brackets in a string are text


def test_ping_is_acknowledged(world: World) -> None:
    reply = post(world, (DATA / "acr_ping.json").read_bytes())
    assert reply.status == 200 and reply.body["ignored"][0]["reason"] == "ping"


def test_event_grid_validation_handshake_is_answered(world: World) -> None:
    body = (DATA / "eventgrid_validation.json").read_bytes()
    reply = post(world, body, headers={"aeg-event-type": "SubscriptionValidation"})
    assert reply.status == 200 and reply.body == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert post(world, body, headers={}).status == 401  # without Event Grid's header: no secret, no answer
    options = post(world, b"", {"WebHook-Request-Origin": "eventgrid.azure.net"}, method="OPTIONS")
    assert options.status == 200 and options.headers == {"WebHook-Allowed-Origin": "eventgrid.azure.net"}


@pytest.mark.parametrize("repository,reason", [
    ("library/nginx", "is no module's"), ("prefect-flows/Bad_Name", "is no module's"),
    ("prefect-flows/unknown", "has nothing deployed yet")])
def test_unknown_repositories_are_acknowledged_with_the_reason(world: World, repository: str, reason: str) -> None:
    deployed(world)
    reply = post(world, acr_push(repository))
    assert reply.status == 200 and reason in reply.body["ignored"][0]["reason"] and queued(world) == []


def test_a_push_queues_a_redeploy_that_rotates_without_a_build(world: World) -> None:
    deployed(world)
    old = world.current_agent()
    registry_has(world, "demo")
    reply = post(world, acr_push())
    assert reply.status == 202
    [request] = queued(world)
    assert request.kind is RequestKind.REDEPLOY and request.request_id == reply.body["accepted"][0]["request_id"]
    assert request.trigger.source == "webhook" and request.revision.image_digest == PUSHED
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and len(world.builder.builds) == 1
    assert record.stage("reuse-image").status is StageStatus.SKIPPED  # type: ignore[union-attr]
    assert world.current_agent() != old
    current = world.state.module("demo").value.current  # type: ignore[union-attr]
    assert current.image_digest == PUSHED and current.image == "registry/demo:v2"
    # the same digest again (a replay, or the push that made it current): nothing new
    again = post(world, acr_push(event_id="evt-2"))
    assert again.status == 200 and "already current" in again.body["ignored"][0]["reason"]
    assert queued(world) == []


def test_a_storm_of_pushes_of_one_digest_is_one_rotation(world: World) -> None:
    deployed(world)
    replies = [post(world, acr_push(event_id=f"evt-{n}")) for n in range(10)]
    assert [r.status for r in replies].count(202) == 1
    assert len(queued(world)) == 1
    reasons = {r.body["ignored"][0]["reason"].split(" request")[0] for r in replies if r.status == 200}
    assert reasons == {"already in progress as"}


def test_a_replayed_event_after_its_rotation_is_ignored(world: World) -> None:
    deployed(world)
    registry_has(world, "demo")
    post(world, acr_push())
    world.run(queued(world)[0])
    world.run(world.request({".env": "GREETING=later\n"}))  # something else became current since
    replay = post(world, acr_push())
    assert replay.status == 200 and "already handled" in replay.body["ignored"][0]["reason"]


def test_the_pipelines_own_push_during_a_build_is_ignored(world: World) -> None:
    deployed(world)
    request = world.request({"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 3\n"})
    seen = {}

    def push_while_building() -> None:  # ACR calls the webhook when the build pushes its tag
        tag = request.revision.code_digest[7:19]
        seen["reply"] = post(world, acr_push(tag=tag, digest="sha256:" + "cd" * 32))

    world.builder.on_build = push_while_building
    assert world.run(request).status is RunStatus.SUCCEEDED
    assert "the pipeline's own push" in seen["reply"].body["ignored"][0]["reason"]
    assert queued(world) == []


def test_pushes_for_two_modules_rotate_both_independently(world: World) -> None:
    for module in ("demo", "other"):
        assert world.run(world.request(module=module)).status is RunStatus.SUCCEEDED
    for module, digest in (("demo", "sha256:" + "11" * 32), ("other", "sha256:" + "22" * 32)):
        registry_has(world, module, digest, tag="v9")
    body = b"[" + eventgrid_push("sha256:" + "11" * 32)[1:-1] + b"]"
    assert post(world, body).status == 202
    assert post(world, acr_push("prefect-flows/other", "sha256:" + "22" * 32)).status == 202
    agents = {m: world.current_agent(m) for m in ("demo", "other")}
    for request in queued(world):
        assert world.run(request).status is RunStatus.SUCCEEDED
    for module in ("demo", "other"):
        assert world.current_agent(module) != agents[module]
        assert world.runtime.running(module) == [world.current_agent(module)]


# -- rollback -------------------------------------------------------------------------------------


def test_rollback_after_a_bad_deploy_brings_the_old_revision_back_without_a_build(world: World) -> None:
    deployed(world)
    good = world.state.module("demo").value.current  # type: ignore[union-attr]
    bad = world.run(world.request({"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    raise SystemExit\n"}))
    assert bad.status is RunStatus.SUCCEEDED  # deployed fine, but its flow is broken
    builds = len(world.builder.builds)
    world.clock.now += timedelta(seconds=1)  # someone notices, then asks for the rollback
    request = rollback_request(world.services, "demo")
    assert request.kind is RequestKind.ROLLBACK and request.revision.id == good.id  # type: ignore[union-attr]
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and len(world.builder.builds) == builds
    current = world.state.module("demo").value.current  # type: ignore[union-attr]
    assert current.id == good.id and current.image == good.image  # type: ignore[union-attr]
    assert [e.kind for e in world.state.history("demo")] == [RequestKind.DEPLOY, RequestKind.DEPLOY,
                                                            RequestKind.ROLLBACK]


def test_rollback_to_a_named_revision_prefix(world: World) -> None:
    deployed(world)
    first = world.state.module("demo").value.current.id  # type: ignore[union-attr]
    world.run(world.request({".env": "GREETING=2\n"}))
    world.run(world.request({".env": "GREETING=3\n"}))
    request = rollback_request(world.services, "demo", to=first[:14])
    assert request.revision.id == first


def test_rollback_is_refused_when_the_image_is_gone(world: World) -> None:
    deployed(world)
    world.run(world.request({"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 9\n"}))
    first_key = next(iter(world.builder.images))
    del world.builder.images[first_key]
    with pytest.raises(NotFound) as info:
        rollback_request(world.services, "demo")
    assert "is gone from the registry" in info.value.message and "deploy that revision's bundle" in (info.value.hint or "")


def test_rollback_is_refused_without_an_earlier_revision_or_with_an_unknown_one(world: World) -> None:
    with pytest.raises(NotFound):
        rollback_request(world.services, "demo")
    deployed(world)
    with pytest.raises(NotFound, match="no earlier successful revision"):
        rollback_request(world.services, "demo")
    with pytest.raises(NotFound, match="no successful revision 'zzz'"):
        rollback_request(world.services, "demo", to="zzz")


def test_a_queued_rollback_runs_from_the_queue_trigger(world: World) -> None:
    from deployer.request_queue import new_record, submit

    deployed(world)
    world.run(world.request({".env": "GREETING=2\n"}))
    request = rollback_request(world.services, "demo")
    submit(world.services, new_record(request))
    world.pump()
    record = world.record(request)
    assert record.status is RunStatus.SUCCEEDED and record.kind is RequestKind.ROLLBACK


def test_history_entries_say_what_triggered_each_revision(world: World) -> None:
    deployed(world)
    registry_has(world, "demo")
    post(world, acr_push())
    world.run(queued(world)[0])
    entries = world.state.history("demo")
    assert [(e.kind, e.trigger.source) for e in entries] == [(RequestKind.DEPLOY, "blob"),
                                                             (RequestKind.REDEPLOY, "webhook")]
    assert entries[1].trigger.detail["digest"] == PUSHED and all(e.stages for e in entries)
