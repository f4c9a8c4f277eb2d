"""A pipeline world of fakes: every port faked, time simulated, bundles really built."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployer.bootstrap import Services
from deployer.bundle import load_archive
from deployer.config import Settings
from deployer.models import Request, RequestKind, Revision, Trigger
from deployer.pipeline.deploy import run_request
from deployer.state import StateRepository
from tests.builders import module_tar
from tests.fakes.documents import MemoryDocumentStore
from tests.fakes.platform import (
    FakeAgentRuntime,
    FakeBundleStore,
    FakeImageBuilder,
    FakeOrchestrator,
    FakeQueue,
)

KEY = "unit-test-config-digest-key-0123"
WEBHOOK_TOKEN = "webhook-shared-secret-value"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    services: Services
    builder: FakeImageBuilder
    runtime: FakeAgentRuntime
    orchestrator: FakeOrchestrator
    bundles: FakeBundleStore
    clock: Clock
    uploads: int = 0

    @property
    def state(self) -> StateRepository:
        return self.services.state

    def request(self, changes: dict[str, str | bytes | None] | None = None,
                kind: RequestKind = RequestKind.DEPLOY, module: str = "demo") -> Request:
        """Upload a module bundle and return the request intake would make of it."""
        self.uploads += 1
        blob = f"{module}/{self.uploads:04d}.tar.gz"
        info = self.bundles.put(blob, module_tar(module, changes=changes))
        with tempfile.TemporaryDirectory() as work:
            loaded = load_archive(io.BytesIO(self.bundles.blobs[blob][0]), Path(work),
                                  self.services.limits, label=blob)
            revision = Revision(loaded.name, loaded.code_digest(), loaded.config_digest(KEY), bundle=blob)
        return Request(Request.make_id("blob", blob, info.etag), kind, revision.module,
                       Trigger("blob", f"{blob}@{info.etag}", {"blob": blob, "etag": info.etag}),
                       revision)

    def run(self, request: Request, **kwargs):  # type: ignore[no-untyped-def]
        self.clock.now += timedelta(seconds=1)  # agents of successive deploys get distinct names
        return run_request(self.services, request, **kwargs)

    def current_agent(self, module: str = "demo") -> str:
        got = self.state.module(module)
        assert got is not None and got.value.agent is not None
        return got.value.agent.name


@pytest.fixture
def world() -> World:
    clock = Clock()
    settings = Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "PREFECT_API_URL": "http://prefect/api",
        "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_HEALTH_TIMEOUT_SECONDS": "60",
        "DEPLOYER_DRAIN_TIMEOUT_SECONDS": "120", "PREFECT_API_KEY": "pnu_secret_key",
        "DEPLOYER_WEBHOOK_TOKEN": WEBHOOK_TOKEN})
    runtime = FakeAgentRuntime()
    orchestrator = FakeOrchestrator(runtime)
    builder = FakeImageBuilder()
    bundles = FakeBundleStore()
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1,
                            sleep=lambda s: None)
    services = Services(settings, state, bundles, FakeQueue(), builder=builder, runtime=runtime,
                        orchestrator=orchestrator, sleep=clock.sleep, now=clock)
    return World(services, builder, runtime, orchestrator, bundles, clock)


