"""Intake on Azurite: an uploaded bundle becomes one queued request, or one rejected record."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from deployer import codec
from deployer.adapters.storage_queue import StorageQueue
from deployer.bootstrap import AppServices, build
from deployer.models import Request, RunStatus
from deployer.pipeline.intake import REJECTED_MODULE, accept_bundle
from deployer.pipeline.upload import upload_module
from deployer.request_queue import StepMessage
from tests.builders import module_files, module_tar, write_module
from tests.integration.conftest import settings_for


def queued(services: AppServices) -> list[Request]:
    """The requests whose first step message is on the queue (it carries the record's token)."""
    queue = services.queue
    assert isinstance(queue, StorageQueue)
    messages = queue.receive(visibility_timeout=1, max_messages=32)
    out = []
    for m in messages:
        step = codec.loads(StepMessage, m.body, where="message")
        record = services.state.run(step.module, step.request_id).value  # type: ignore[union-attr]
        assert step.token == record.token
        out.append(record.as_request())
    return out


def state_keys(services: AppServices) -> list[str]:
    return services.state.docs.list("")


def test_uploaded_module_becomes_one_queued_deploy_request(services: AppServices, tmp_path: Path) -> None:
    uploaded = upload_module(services, write_module(tmp_path))
    record = accept_bundle(services, uploaded.blob)
    assert record.status is RunStatus.QUEUED and record.request_id == uploaded.request_id
    assert [s.name for s in record.stages] == ["validate", "enqueue"]
    [request] = queued(services)
    assert request.request_id == uploaded.request_id and request.module == "demo"
    assert request.revision.code_digest == uploaded.code_digest
    assert request.revision.config_digest == uploaded.config_digest
    assert request.revision.bundle == uploaded.blob
    assert request.trigger.source == "blob" and request.trigger.detail["etag"] == uploaded.etag


def test_the_same_upload_triggered_twice_is_queued_once(services: AppServices, tmp_path: Path) -> None:
    uploaded = upload_module(services, write_module(tmp_path))
    first = accept_bundle(services, uploaded.blob)
    second = accept_bundle(services, uploaded.blob)
    assert first.request_id == second.request_id
    assert len(queued(services)) == 1


def test_bad_bundle_gets_a_rejected_record_naming_every_problem_and_nothing_else(
    services: AppServices,
) -> None:
    data = module_tar(changes={".env": "TOKEN=abc\nnot valid hunter2\n",
                               "prefect.yaml": "deployments:\n  - name: a\n    entrypoint: gone.py:f\n"})
    services.bundles.upload("demo.tar.gz", io.BytesIO(data), {})
    record = accept_bundle(services, "demo.tar.gz")
    assert record.status is RunStatus.REJECTED
    assert record.error is not None and record.error["code"] == "bundle_invalid"
    messages = [p["message"] for p in record.error["problems"]]
    assert len(messages) == 2
    assert any("expected KEY=VALUE" in m for m in messages) and any("gone.py" in m for m in messages)
    assert "hunter2" not in codec.dumps(record).decode()
    assert queued(services) == []
    # the run record, and the refusal in the module's history: nothing else
    assert state_keys(services) == ["history/demo.jsonl", f"runs/demo/{record.request_id}.json"]
    [refused] = services.state.history("demo")
    assert (refused.request_id, refused.outcome) == (record.request_id, RunStatus.REJECTED)


def test_something_that_is_not_an_archive_is_rejected(services: AppServices) -> None:
    services.bundles.upload("demo.tar.gz", io.BytesIO(b"hello, I am text"), {})
    record = accept_bundle(services, "demo.tar.gz")
    assert record.status is RunStatus.REJECTED
    assert "not an archive" in record.error["problems"][0]["message"]  # type: ignore[index]


def test_bundle_whose_module_differs_from_its_blob_name_is_rejected(services: AppServices) -> None:
    services.bundles.upload("other.tar.gz", io.BytesIO(module_tar("demo")), {})
    record = accept_bundle(services, "other.tar.gz")
    assert record.status is RunStatus.REJECTED and record.module == "other"
    assert "holds module 'demo' but its name says 'other'" in record.error["problems"][0]["message"]  # type: ignore[index]
    assert queued(services) == []


def test_blob_with_an_invalid_module_name_is_recorded_apart(services: AppServices) -> None:
    services.bundles.upload("Not A Module.zip", io.BytesIO(b"PK\x05\x06" + b"\0" * 18), {})
    record = accept_bundle(services, "Not A Module.zip")
    assert record.status is RunStatus.REJECTED and record.module == REJECTED_MODULE


@pytest.mark.parametrize("blob", ["demo.tgz", "demo/readme.txt", "demo/bundle.zip", "demo", ".tar.gz",
                                  "demo/sub/.tar.gz"])
def test_a_blob_whose_name_is_no_documented_form_is_never_deployed_and_says_why(
        services: AppServices, blob: str) -> None:
    services.bundles.upload(blob, io.BytesIO(module_tar("demo")), {})
    record = accept_bundle(services, blob)
    assert record.status is RunStatus.REJECTED
    message = record.error["problems"][0]["message"]  # type: ignore[index]
    assert "is not a bundle name the deployer deploys" in message and "<module>.zip" in message
    assert queued(services) == []


def test_blob_over_the_size_limit_is_rejected_before_download(storage_connection: str) -> None:
    services = build(settings_for(storage_connection, DEPLOYER_MAX_BUNDLE_MB="1"))
    services.bundles.upload("demo.tar.gz", io.BytesIO(b"\x1f\x8b" + b"\0" * (2 * 1024 * 1024)), {})
    record = accept_bundle(services, "demo.tar.gz")
    assert record.status is RunStatus.REJECTED
    assert "more than the size limit" in record.error["problems"][0]["message"]  # type: ignore[index]


def test_rejection_leaves_other_modules_state_untouched(services: AppServices, tmp_path: Path) -> None:
    good = upload_module(services, write_module(tmp_path, "good", module_files("good")))
    accept_bundle(services, good.blob)
    before = {k: services.state.docs.get(k) for k in state_keys(services)}
    services.bundles.upload("demo.tar.gz", io.BytesIO(module_tar(changes={"Dockerfile": None})), {})
    accept_bundle(services, "demo.tar.gz")
    after = {k: services.state.docs.get(k) for k in state_keys(services) if k in before}
    assert after == before
