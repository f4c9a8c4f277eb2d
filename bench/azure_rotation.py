"""Benchmark: one rotation on the azure backend against the fake ARM/ACR endpoints, with 100 ms
per ARM call and simulated build (90 s) and provisioning (40 s) times. All waits are simulated,
so the wall time is the pipeline's own time. Prints ARM calls by kind, the simulated duration,
and the own time (target: under 2 s; no call that re-reads something that cannot have changed).
Baseline in the same run: the same rotation's SDK calls replayed with no pipeline logic around
them (the cost of the SDK and the fake alone). Printed, never asserted.

    python bench/azure_rotation.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer.bundle import BundleLimits, load_archive  # noqa: E402
from deployer.models import Intent, Request, RequestKind, Revision, Trigger  # noqa: E402
from deployer.state import StateRepository  # noqa: E402
from tests.builders import module_tar  # noqa: E402
from tests.fakes.azure import FakeAzure  # noqa: E402
from tests.fakes.documents import MemoryDocumentStore  # noqa: E402
from tests.fakes.platform import FakeBundleStore  # noqa: E402
from tests.integration.azure_world import azure_world  # noqa: E402

KEY = "bench-config-digest-key-0123456789"
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "DEPLOYER_CONFIG_DIGEST_KEY": KEY}


def request_for(world, changes, n):  # type: ignore[no-untyped-def]
    blob = f"demo/{n:04d}.tar.gz"
    info = world.services.bundles.put(blob, module_tar(changes=changes))
    with tempfile.TemporaryDirectory() as work:
        module = load_archive(io.BytesIO(world.services.bundles.blobs[blob][0]), Path(work),
                              BundleLimits(), label=blob)
        revision = Revision.of(module, KEY, bundle=blob)
    now = world.azure.clock.now()
    return Request(Request.make_id("bench", blob, info.etag), RequestKind.DEPLOY, "demo",
                   Trigger("blob", blob, {"blob": blob, "etag": info.etag}), revision, now, Intent(now, blob))


def main() -> None:
    azure = FakeAzure(latency_seconds=0.1)
    azure.acr.build_seconds = 90.0
    azure.aci.provision_seconds = 40.0
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1)
    world = azure_world(BASE, state, FakeBundleStore(), None, azure)
    world.run(request_for(world, None, 1))  # the agent to rotate away from
    azure.clock.advance(60)

    request = request_for(world, {"flow.py": "from prefect import flow\n\n@flow\ndef hello():\n    return 2\n"}, 2)
    before = azure.calls.copy()
    simulated_start = azure.clock.now()
    started = time.perf_counter()
    cpu = time.process_time()
    record = world.run(request)
    own = time.perf_counter() - started
    own_cpu = time.process_time() - cpu
    simulated = (azure.clock.now() - simulated_start).total_seconds()
    calls = azure.calls - before
    arm = {k: v for k, v in calls.items() if not k.startswith(("acr:", "storage:", "Container"))
           or k.startswith("ContainerGroups")}

    # baseline: the same kinds and numbers of SDK calls, replayed bare
    replay = FakeAzure()
    replay_world = azure_world(BASE, StateRepository(MemoryDocumentStore()), FakeBundleStore(), None, replay)
    replay_world.run(request_for(replay_world, None, 1))
    [group] = [n for (_, n) in replay.aci.groups]
    aci = replay_world.clients.aci.container_groups
    started = time.perf_counter()
    for _ in range(sum(v for k, v in calls.items() if k.startswith("ContainerGroups_Get"))):
        aci.get("agents", group)
    for _ in range(calls.get("ContainerGroups_ListByResourceGroup", 0)):
        list(aci.list_by_resource_group("agents"))
    baseline = time.perf_counter() - started

    print(f"azure-rotation: outcome {record.status.value}; simulated {simulated:.0f} s "
          f"(build {azure.acr.build_seconds:.0f} s, provisioning {azure.aci.provision_seconds:.0f} s, "
          f"{azure.latency_seconds * 1000:.0f} ms per call)")
    print("azure-rotation: ARM calls " + ", ".join(f"{k} {v}" for k, v in sorted(arm.items())))
    print("azure-rotation: other calls " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()) if k not in arm))
    print(f"azure-rotation: own time {own:.3f} s wall, {own_cpu:.3f} s CPU (target < 2 s); "
          f"bare SDK replay of the group reads {baseline:.3f} s; ratio {own / max(baseline, 1e-9):.1f}x")
    print("azure-rotation: stages " + ", ".join(
        f"{s.name} {s.seconds:.0f}s" for s in record.stages if s.seconds is not None) + " (simulated)")


if __name__ == "__main__":
    main()
