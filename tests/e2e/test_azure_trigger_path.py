"""DEPLOYER_BACKEND=azure through the same trigger path: a bundle uploaded to Azurite, the function
app hosted by `deployer dev` (in this process, so that its services can use the fake Azure
endpoints), ACR Tasks and ACI through the real SDK clients."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer import bootstrap
from deployer.bootstrap import build
from deployer.config import Settings, with_defaults
from deployer.devhost import DevHost, HostOptions, load_app
from deployer.models import RunStatus
from deployer.pipeline.upload import upload_module
from tests.builders import write_module
from tests.e2e.harness import ROOT, demo_files
from tests.integration.azure_world import AZURE_SETTINGS, AzureWorld, azure_world

KEY = "azure-e2e-config-digest-key-0123456"


@pytest.fixture
def hosted(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AzureWorld, str]]:
    tag = uuid.uuid4().hex[:8]
    values = {"AzureWebJobsStorage": storage_connection, "DEPLOYER_CONFIG_DIGEST_KEY": KEY,
              "DEPLOYER_BUNDLES_CONTAINER": f"bundles-{tag}", "DEPLOYER_STATE_CONTAINER": f"state-{tag}",
              "DEPLOYER_REQUEST_QUEUE": f"requests-{tag}"}
    storage = build(Settings.from_env({**values, **AZURE_SETTINGS}))
    world = azure_world(values, storage.state, storage.bundles, storage.queue)
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


def test_azure_backend_deploys_through_blob_and_queue_triggers(hosted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    world, _ = hosted
    uploaded = upload_module(world.services, write_module(tmp_path, "demo", demo_files("demo")))
    deadline = time.monotonic() + 120
    record = None
    while time.monotonic() < deadline:
        got = world.services.state.run("demo", uploaded.request_id)
        if got is not None and got.value.status.finished:
            record = got.value
            break
        time.sleep(0.2)
    assert record is not None and record.status is RunStatus.SUCCEEDED, record
    assert [s.name for s in record.stages] == ["validate", "enqueue", "plan", "build", "start-agent",
                                              "wait-online", "register", "commit"]
    assert world.azure.calls["Registries_ScheduleRun"] == 1
    [group] = [n for (_, n) in world.azure.aci.groups]
    assert world.services.state.module("demo").value.agent.name == group  # type: ignore[union-attr]
