"""Benchmark: the cleanup planner and executor.

1. Planning over 5,000 agents and 20,000 image tags in 100 modules: CPU time (target < 1 s), next
   to a floor measured in the same run (sorting the same inputs once).
2. Executing 500 container-group deletions against the fake ARM endpoint with 100 ms of real
   latency per call: wall time with the executor's bounded concurrency, next to deleting them one
   by one in the same run.
3. Pacing under the default ACI delete quota (100 per 5 min, 300 per hour), on simulated time: the
   peak deletions per window, which must never exceed the quota, and what is deferred.
Printed, never asserted.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer.cleanup.plan import Inventory, Policy, plan_cleanup  # noqa: E402
from deployer.models import AgentRef, HistoryEntry, ModuleState, RequestKind, Revision, RunStatus, Trigger  # noqa: E402
from deployer.pipeline.cleanup import run_cleanup  # noqa: E402
from deployer.ports.agents import AgentInfo, AgentState  # noqa: E402
from deployer.ports.images import ManifestInfo  # noqa: E402
from deployer.state import StateRepository  # noqa: E402
from tests.fakes.azure import FakeAzure  # noqa: E402
from tests.fakes.documents import MemoryDocumentStore  # noqa: E402
from tests.fakes.platform import FakeBundleStore  # noqa: E402
from tests.integration.azure_world import azure_world  # noqa: E402

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
POLICY = Policy(keep_revisions=5, rollback_window=timedelta(days=14), retention=timedelta(days=30),
                keep_records=20, orphan_grace=timedelta(hours=24), drain_grace=timedelta(minutes=20))
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "DEPLOYER_CONFIG_DIGEST_KEY": "bench-key-0123456789abcdef"}


def big_inventory(modules: int = 100, agents: int = 5000, tags: int = 20000) -> Inventory:
    states, history, agent_list, manifests = {}, {}, [], {}
    for m in range(modules):
        name = f"mod{m:03d}"
        revisions = [Revision(name, f"sha256:{m:04d}{r:08d}" + "0" * 52, "hmac-sha256:" + "1" * 64,
                              image=f"acr.azurecr.io/prefect-flows/{name}:{m:04d}{r:08d}",
                              bundle=f"{name}/{r}.tar.gz", image_digest=f"sha256:{m:04d}{r:060d}") for r in range(40)]
        current = revisions[-1]
        states[name] = ModuleState(name, current=current,
                                   agent=AgentRef(f"agent-{name}-cur", current.id, "q", NOW))
        history[name] = [HistoryEntry(name, r, f"req{i}", RequestKind.DEPLOY, Trigger("blob", "x"),
                                      RunStatus.SUCCEEDED, NOW - timedelta(days=80 - 2 * i)) for i, r in enumerate(revisions)]
        per = agents // modules
        agent_list += [AgentInfo(f"agent-{name}-{a}", name, revisions[a % 40].id, f"q{a}",
                                 AgentState.RUNNING if a % 7 else AgentState.FAILED, NOW - timedelta(days=a % 30))
                       for a in range(per - 1)] + [AgentInfo(f"agent-{name}-cur", name, current.id, "q", AgentState.RUNNING, NOW)]
        per_tags = tags // modules
        manifests[name] = [ManifestInfo(name, f"sha256:{m:04d}{t:060d}", (f"{m:04d}{t:08d}",),
                                        NOW - timedelta(hours=per_tags - t)) for t in range(per_tags)]
    return Inventory(now=NOW, modules=states, history=history, busy=frozenset(), agents=agent_list,
                     manifests=manifests, bundles=[], runs=[], queues={})


def bench_planning() -> None:
    inventory = big_inventory()
    start = time.process_time()
    floor = sorted(inventory.agents, key=lambda a: a.name), [sorted(ms, key=lambda x: x.created_at)
                                                           for ms in inventory.manifests.values()]
    floor_s = time.process_time() - start
    start = time.process_time()
    actions = plan_cleanup(inventory, POLICY)
    plan_s = time.process_time() - start
    deletes = sum(1 for a in actions if a.delete)
    print(f"cleanup-plan: 5000 agents, 20000 tags: {plan_s:.3f} s CPU (target < 1 s), {len(actions)} actions, "
          f"{deletes} deletions; floor (sorting the inputs) {floor_s:.3f} s; ratio {plan_s / max(floor_s, 1e-9):.1f}x")
    assert floor


def world_with_groups(azure: FakeAzure, count: int, quota: str):  # type: ignore[no-untyped-def]
    from azure.mgmt.containerinstance import models as m

    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1)
    world = azure_world({**BASE, "DEPLOYER_ACI_DELETE_QUOTA": quota, "DEPLOYER_CLEANUP_CONCURRENCY": "8",
                         "DEPLOYER_CLEANUP_BUDGET_SECONDS": "3000"}, state, FakeBundleStore(), None, azure)
    body = m.ContainerGroup(location="westeurope", os_type="Linux", tags={
        "managed-by": "prefect-collective-deployer", "module": "gone", "revision": "x"}, containers=[m.Container(
            name="agent", image="x", resources=m.ResourceRequirements(requests=m.ResourceRequests(cpu=1, memory_in_gb=1)))])
    for n in range(count):
        world.clients.aci.container_groups.begin_create_or_update("agents", f"agent-gone-2026010{n % 9}{n:06d}",
                                                                  body, polling=False)
    azure.clock.advance(3 * 86400)
    return world


def bench_execution() -> None:
    azure = FakeAzure()
    world = world_with_groups(azure, 500, "1000/300,3000/3600")  # a quota that does not bind here
    azure.wall_latency_seconds = 0.1
    start = time.perf_counter()
    report = run_cleanup(world.services)
    concurrent = time.perf_counter() - start
    deleted = report.count("deleted")

    azure2 = FakeAzure()
    world2 = world_with_groups(azure2, 500, "1000/300,3000/3600")
    azure2.wall_latency_seconds = 0.1
    names = [a.name for a in world2.services.runtime.list(detailed=False)]
    start = time.perf_counter()
    for name in names:
        world2.services.runtime.stop(name)
    sequential = time.perf_counter() - start
    print(f"cleanup-exec: {deleted} deletions with 100 ms per call: {concurrent:.1f} s with concurrency 8, "
          f"{sequential:.1f} s one by one: {sequential / concurrent:.1f}x faster")


def bench_pacing() -> None:
    azure = FakeAzure()
    world = world_with_groups(azure, 500, "100/300,300/3600")
    first = run_cleanup(world.services)
    azure.clock.advance(3600)
    second = run_cleanup(world.services)
    five = azure.peak("ContainerGroups_Delete", timedelta(minutes=5))
    hour = azure.peak("ContainerGroups_Delete", timedelta(hours=1))
    print(f"cleanup-pace: 500 deletions under 100/5 min and 300/h: first run deleted {first.count('deleted')}, "
          f"deferred {first.count('deferred')}; the next hour {second.count('deleted')} more; "
          f"peak {five} per 5 min (quota 100), {hour} per hour (quota 300)")


if __name__ == "__main__":
    bench_planning()
    bench_execution()
    bench_pacing()
