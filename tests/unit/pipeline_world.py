"""A pipeline world of fakes: every port faked, time simulated, bundles really built."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployer.bootstrap import AppServices
from deployer.bundle import load_archive
from deployer.config import Settings
from deployer.models import Intent, Request, RequestKind, Revision, RunRecord, Trigger
from deployer.request_queue import new_record, submit
from deployer.state import StateRepository
from tests.builders import module_tar
from tests.fakes.documents import MemoryDocumentStore
from tests.fakes.platform import (
    FakeAgentRuntime,
    FakeBundleStore,
    FakeCodeStore,
    FakeImageBuilder,
    FakeOrchestrator,
    FakeQueue,
    FakeSecrets,
)
from tests.fakes.trigger import QueueTrigger

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

    def advance_to(self, when: datetime) -> None:
        self.now = max(self.now, when)


@dataclass
class World:
    services: AppServices
    builder: FakeImageBuilder
    runtime: FakeAgentRuntime
    orchestrator: FakeOrchestrator
    bundles: FakeBundleStore
    clock: Clock
    queue: FakeQueue
    trigger: QueueTrigger
    code: FakeCodeStore
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
            revision = Revision.of(loaded, KEY, bundle=blob)
        self.clock.now += timedelta(seconds=1)  # uploads (and their agents) a second apart
        return Request(Request.make_id("blob", blob, info.etag), kind, revision.module,
                       Trigger("blob", f"{blob}@{info.etag}", {"blob": blob, "etag": info.etag}),
                       revision, self.clock.now, Intent(self.clock.now, blob))

    def submit(self, request: Request) -> RunRecord:
        return submit(self.services, new_record(request))

    def record(self, request: Request) -> RunRecord:
        got = self.state.run(request.module, request.request_id)
        assert got is not None
        return got.value

    def run(self, request: Request, *, settled: bool = False) -> RunRecord:
        """Submit the request and let the queue trigger run until it is finished (or only
        settled: cut over, old agents maybe still draining)."""
        self.submit(request)

        def done() -> bool:
            status = self.record(request).status
            return status.settled if settled else status.finished

        self.trigger.pump(until=done)
        return self.record(request)

    def pump(self, until=lambda: False) -> int:  # type: ignore[no-untyped-def]
        return self.trigger.pump(until=until)

    def current_agent(self, module: str = "demo") -> str:
        got = self.state.module(module)
        assert got is not None and got.value.agent is not None
        return got.value.agent.name


@pytest.fixture
def world() -> World:
    return make_world()


def make_world(extra: dict[str, str] | None = None) -> World:
    """The pipeline on fakes; ``extra`` settings on top (environments: each one its own state,
    agents and Prefect, all sharing bundles, queue, images and code, as on Azure)."""
    clock = Clock()
    settings = Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "PREFECT_API_URL": "http://prefect/api",
        "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_HEALTH_TIMEOUT_SECONDS": "60",
        "PREFECT_API_KEY": "pnu_secret_key",
        "DEPLOYER_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "DEPLOYER_BAKE_SECONDS": "0", **(extra or {})})
    builder = FakeImageBuilder()
    bundles = FakeBundleStore()
    queue = FakeQueue(clock)
    code = FakeCodeStore()
    secrets = FakeSecrets()

    def services_of(settings: Settings) -> AppServices:
        runtime = FakeAgentRuntime()
        orchestrator = FakeOrchestrator(runtime)
        orchestrator.clock = clock
        # one answer for both ways of checking new code: a warm checker, or a check run
        runtime.code_check = lambda pull, entrypoints: orchestrator.code_check(pull, entrypoints)
        # a run's own container (``isolation: run``) runs it
        runtime.on_start = lambda spec: orchestrator.started(spec.flow_run_id) if spec.flow_run_id else None
        state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1,
                                sleep=lambda s: None)
        return AppServices(settings, state, bundles, queue, builder=builder, runtime=runtime,
                           orchestrator=orchestrator, code=code, sleep=clock.sleep, now=clock,
                           secrets=secrets)

    services = services_of(settings)
    services.environment_factory = lambda name: services_of(settings.for_environment(name))
    runtime, orchestrator = services.runtime, services.orchestrator
    assert isinstance(runtime, FakeAgentRuntime) and isinstance(orchestrator, FakeOrchestrator)
    code.on_check = runtime.answer_check  # the agents' warm checkers
    trigger = QueueTrigger(services, queue, clock.advance_to)
    return World(services, builder, runtime, orchestrator, bundles, clock, queue, trigger, code)
