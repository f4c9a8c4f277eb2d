"""DEPLOYER_BACKEND=azure through the same trigger path: a bundle uploaded to Azurite, the function
app hosted by `deployer dev` (in this process, so that its services can use the fake Azure
endpoints), ACR Tasks and ACI through the real SDK clients."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from deployer import bootstrap
from deployer.adapters.blob_code import BlobCodeStore
from deployer.bootstrap import build
from deployer.bundle.digest import short
from deployer.config import Settings, with_defaults
from deployer.devhost import DevHost, HostOptions, load_app
from deployer.models import RunRecord, RunStatus
from deployer.pipeline.upload import upload_module
from tests.builders import write_module
from tests.e2e.harness import FLOW, ROOT, demo_files
from tests.integration.azure_world import AZURE_SETTINGS, AzureWorld, azure_world

KEY = "azure-e2e-config-digest-key-0123456"
#: an image that can pull its code from the deployer's storage
PULLS = {"requirements.txt": "prefect>=3.4,<4\nprefect-azure[blob_storage]\n"}


@pytest.fixture
def hosted(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AzureWorld, str]]:
    tag = uuid.uuid4().hex[:8]
    values = {"AzureWebJobsStorage": storage_connection, "DEPLOYER_CONFIG_DIGEST_KEY": KEY,
              "DEPLOYER_BUNDLES_CONTAINER": f"bundles-{tag}", "DEPLOYER_STATE_CONTAINER": f"state-{tag}",
              "DEPLOYER_REQUEST_QUEUE": f"requests-{tag}",
              "DEPLOYER_BAKE_SECONDS": "0"}  # the bake window has its own tests (test_health_ladder)
    storage = build(Settings.from_env({**values, **AZURE_SETTINGS}))
    world = azure_world(values, storage.state, storage.bundles, storage.queue,
                        code=BlobCodeStore(BlobServiceClient.from_connection_string(storage_connection),
                                           f"code-{tag}"))
    # the host's queue is real (Azurite counts real seconds for a delayed message) while the fake
    # Azure runs on simulated time: keep the simulated build and start inside one step's slice
    world.azure.acr.build_seconds = 8.0
    world.azure.aci.provision_seconds = 4.0
    world.services.builder.expected_build_seconds = 4.0  # type: ignore[misc]
    world.services.runtime.expected_start_seconds = 4.0  # type: ignore[misc]
    for key, value in with_defaults({**values, **AZURE_SETTINGS}).items():
        monkeypatch.setenv(key, value)  # the host's app settings, as `deployer dev` sets them
    bootstrap.install(world.services)
    host = DevHost(load_app(ROOT / "function_app.py"), HostOptions(poll_seconds=0.2, lease_seconds=30))
    host.start()
    try:
        yield world, tag
    finally:
        host.stop()
        bootstrap.install(None)


def finished(world: AzureWorld, request_id: str) -> RunRecord:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = world.services.state.run("demo", request_id)
        if got is not None and got.value.status.finished:
            return got.value
        time.sleep(0.2)
    got = world.services.state.run("demo", request_id)
    raise AssertionError(f"request {request_id} not finished in 120 s: {got.value if got else None}")


def test_azure_backend_deploys_through_blob_and_queue_triggers(hosted, tmp_path: Path, storage_connection: str) -> None:  # type: ignore[no-untyped-def]
    world, tag = hosted
    uploaded = upload_module(world.services, write_module(tmp_path / "1", "demo", demo_files("demo", PULLS)))
    record = finished(world, uploaded.request_id)
    assert record.status is RunStatus.SUCCEEDED, record
    assert [s.name for s in record.stages] == ["validate", "enqueue", "plan", "publish-code", "build",
                                              "start-agent", "check-entrypoints", "wait-online",
                                              "register", "wait-ready", "commit"]
    assert world.azure.calls["Registries_ScheduleRun"] == 1
    [group] = [n for (_, n) in world.azure.aci.groups]
    assert world.services.state.module("demo").value.agent.name == group  # type: ignore[union-attr]

    # a code-only change: published to the code container, no build, no container group
    changed = demo_files("demo", {**PULLS, "flow.py": FLOW.replace('print("greeting"', 'print("v2"')})
    code_only = upload_module(world.services, write_module(tmp_path / "2", "demo", changed))
    record = finished(world, code_only.request_id)
    assert record.status is RunStatus.SUCCEEDED, record
    assert [s.name for s in record.stages] == ["validate", "enqueue", "plan", "publish-code", "check-code",
                                              "register", "wait-ready", "commit"]
    assert world.azure.calls["Registries_ScheduleRun"] == 1 and len(world.azure.aci.groups) == 1
    container = BlobServiceClient.from_connection_string(storage_connection).get_container_client(f"code-{tag}")
    stored = {b.name for b in container.list_blobs(name_starts_with=f"demo/{short(code_only.revision.code_digest)}/")}
    assert f"demo/{short(code_only.revision.code_digest)}/flow.py" in stored
    assert not any(name.endswith(".env") for name in stored)
    [(_, deployment)] = [(k, d) for k, d in world.orchestrator.deployments.items() if k[0] == "demo"]
    pulled = json.dumps(deployment["pull_steps"])
    assert "pull_from_azure_blob_storage" in pulled and container.url.split("/code-")[0] in pulled
    account_key = storage_connection.split("AccountKey=", 1)[1].split(";", 1)[0]
    assert account_key not in pulled and "sig=" not in pulled and KEY not in pulled
