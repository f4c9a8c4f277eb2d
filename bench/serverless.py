"""Benchmark: what a rotation costs as serverless steps, on the fake Azure backend with
realistic simulated waits (ACR build 5 min, ACI start 90 s, 100 ms per ARM call, an old agent
with a 20-minute flow run to drain), through the queue trigger on a simulated clock:

    invocations        how many times the queue trigger ran a step
    longest            the longest single invocation (target: under the step slice)
    billed             the sum of invocation time, what Flex Consumption bills
                       (target: under 2% of the rotation's elapsed time)

next to the one-invocation design measured in the same run: the same rotation driven from one
process that waits in place (``rotation.drive``, which is what one long invocation did), whose
billed time is its elapsed time. Then 20 modules with 3 uploads each, all at once: requests lost
(target 0), rotations (target 20), and the simulated wall time against a single rotation's.
Printed, never asserted.

    python bench/serverless.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer.bundle import BundleLimits, load_archive  # noqa: E402
from deployer.models import Intent, Request, RequestKind, Revision, RunStatus, Trigger  # noqa: E402
from deployer.request_queue import new_record, submit  # noqa: E402
from deployer.rotation.drive import drive  # noqa: E402
from deployer.state import StateRepository  # noqa: E402
from tests.builders import module_tar  # noqa: E402
from tests.fakes.azure import FakeAzure  # noqa: E402
from tests.fakes.documents import MemoryDocumentStore  # noqa: E402
from tests.fakes.platform import FakeBundleStore  # noqa: E402
from tests.integration.azure_world import AzureWorld, azure_world  # noqa: E402

KEY = "bench-config-digest-key-0123456789"
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "DEPLOYER_CONFIG_DIGEST_KEY": KEY,
        "DEPLOYER_HEALTH_TIMEOUT_SECONDS": "600"}
BUILD_SECONDS, PROVISION_SECONDS, DRAIN_MINUTES = 300.0, 90.0, 20


def make_world() -> AzureWorld:
    azure = FakeAzure(latency_seconds=0.1)
    azure.acr.build_seconds = BUILD_SECONDS
    azure.aci.provision_seconds = PROVISION_SECONDS
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1,
                            sleep=azure.clock.sleep)
    return azure_world(BASE, state, FakeBundleStore(), None, azure)


def request_for(world: AzureWorld, module: str, n: int, changes: dict | None = None) -> Request:  # type: ignore[type-arg]
    blob = f"{module}/{n:04d}.tar.gz"
    bundles: FakeBundleStore = world.services.bundles  # type: ignore[assignment]
    info = bundles.put(blob, module_tar(module, changes=changes))
    with tempfile.TemporaryDirectory() as work:
        loaded = load_archive(io.BytesIO(bundles.blobs[blob][0]), Path(work), BundleLimits(), label=blob)
        revision = Revision.of(loaded, KEY, bundle=blob)
    now = world.azure.clock.now()
    return Request(Request.make_id("bench", blob, info.etag), RequestKind.DEPLOY, module,
                   Trigger("blob", blob, {"blob": blob, "etag": info.etag}), revision, now,
                   Intent(now, f"{n:04d}"))


def code(n: int) -> dict[str, str]:
    return {"flow.py": f"from prefect import flow\n\n@flow\ndef hello():\n    return {n}\n"}


def with_long_run(world: AzureWorld) -> Request:
    """The module deployed once, a 20-minute run in flight on its agent, and the next upload."""
    world.run(request_for(world, "demo", 1))
    agent = world.services.state.module("demo").value.agent.name  # type: ignore[union-attr]
    run = world.orchestrator.add_run(agent, "RUNNING", name="nightly-etl")
    run.finishes_at = world.azure.clock.now() + timedelta(minutes=DRAIN_MINUTES)
    world.azure.clock.advance(1)
    return request_for(world, "demo", 2, code(2))


def steps_rotation() -> tuple[dict[str, float], AzureWorld]:
    world = make_world()
    request = with_long_run(world)
    assert world.trigger is not None
    before = len(world.trigger.invocations)
    calls = world.azure.calls.copy()
    started = world.azure.clock.now()
    record = world.run(request)
    elapsed = (world.azure.clock.now() - started).total_seconds()
    invocations = world.trigger.invocations[before:]
    return {"outcome": record.status is RunStatus.SUCCEEDED, "elapsed": elapsed,
            "invocations": len(invocations), "longest": max(i.seconds for i in invocations),
            "billed": sum(i.seconds for i in invocations),
            "wall": sum(i.wall_seconds for i in invocations),
            "arm": sum((world.azure.calls - calls).values())}, world


def one_invocation_rotation() -> dict[str, float]:
    world = make_world()
    request = with_long_run(world)
    submit(world.services, new_record(request))
    started = world.azure.clock.now()
    wall = time.perf_counter()
    record = drive(world.services, "demo", request.request_id,
                   until=lambda r: r.status.finished)
    elapsed = (world.azure.clock.now() - started).total_seconds()
    return {"outcome": record.status is RunStatus.SUCCEEDED, "elapsed": elapsed, "invocations": 1,
            "longest": elapsed, "billed": elapsed, "wall": time.perf_counter() - wall}


def first_deploy() -> float:
    """One module's first deploy (a build and a start, nothing to drain): simulated seconds."""
    world = make_world()
    started = world.azure.clock.now()
    world.run(request_for(world, "solo", 0, code(0)))
    return (world.azure.clock.now() - started).total_seconds()


def many_modules() -> None:
    single_elapsed = first_deploy()
    world = make_world()
    assert world.trigger is not None
    modules = [f"mod{n:02d}" for n in range(20)]
    requests = []
    for round_ in range(3):
        for module in modules:
            requests.append(request_for(world, module, round_, code(round_)))
        world.azure.clock.advance(0.3)
    started = world.azure.clock.now()
    for request in requests:
        submit(world.services, new_record(request))
    wall = time.perf_counter()
    world.trigger.pump(limit=100_000)
    elapsed = (world.azure.clock.now() - started).total_seconds()
    records = [world.services.state.run(r.module, r.request_id).value for r in requests]  # type: ignore[union-attr]
    lost = sum(1 for r in records if not r.status.finished) + len(world.trigger.queue.poison)
    rotations = sum(1 for r in records if r.status is RunStatus.SUCCEEDED)
    superseded = sum(1 for r in records if r.status is RunStatus.SUPERSEDED)
    newest_current = all(world.services.state.module(m).value.current.id == requests[40 + i].revision.id  # type: ignore[union-attr]
                         for i, m in enumerate(modules))
    invocations = world.trigger.invocations
    print(f"serverless: 20 modules x 3 uploads at once: lost {lost} (target 0), rotations {rotations} "
          f"(target 20), superseded {superseded}, newest current everywhere {newest_current}")
    print(f"serverless: 20 modules: {elapsed:.0f} s simulated vs one module's first deploy {single_elapsed:.0f} s: "
          f"{elapsed / single_elapsed:.2f}x; {len(invocations)} invocations, longest "
          f"{max(i.seconds for i in invocations):.1f} s, own time {time.perf_counter() - wall:.2f} s wall")


def main() -> None:
    steps, world = steps_rotation()
    single = one_invocation_rotation()
    slice_seconds = world.services.settings.step_slice_seconds
    print(f"serverless: one rotation (build {BUILD_SECONDS:.0f} s, ACI start {PROVISION_SECONDS:.0f} s, "
          f"a {DRAIN_MINUTES}-minute run to drain, 100 ms per ARM call), all simulated")
    print(f"serverless: steps: succeeded {steps['outcome']}, elapsed {steps['elapsed']:.0f} s, "
          f"{steps['invocations']:.0f} invocations, longest {steps['longest']:.1f} s (slice "
          f"{slice_seconds} s), billed {steps['billed']:.1f} s = "
          f"{100 * steps['billed'] / steps['elapsed']:.2f}% of elapsed (target < 2%), "
          f"{steps['arm']:.0f} HTTP calls, own time {steps['wall']:.2f} s wall")
    print(f"serverless: one invocation: succeeded {single['outcome']}, elapsed {single['elapsed']:.0f} s, "
          f"longest {single['longest']:.0f} s, billed {single['billed']:.0f} s = 100% of elapsed")
    print(f"serverless: billed time ratio one-invocation / steps: {single['billed'] / steps['billed']:.0f}x")
    many_modules()


if __name__ == "__main__":
    main()
