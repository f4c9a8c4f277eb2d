"""The nightly cleanup against the fake ARM and ACR endpoints, with hundreds of container groups
and tags, throttling, and a delete quota that runs out half-way."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from deployer.errors import LockBusy
from deployer.models import RunStatus
from deployer.pipeline.cleanup import last_report, run_cleanup
from deployer.state import StateRepository
from tests.fakes.documents import MemoryDocumentStore
from tests.fakes.platform import FakeBundleStore
from tests.integration.azure_world import AzureWorld, azure_world
from tests.integration.test_azure_backend import BASE, deploy

QUOTA = {"DEPLOYER_ACI_DELETE_QUOTA": "100/300,300/3600", "DEPLOYER_CLEANUP_BUDGET_SECONDS": "500",
         "DEPLOYER_KEEP_REVISIONS": "3", "DEPLOYER_ROLLBACK_WINDOW_DAYS": "1"}


@pytest.fixture
def world() -> AzureWorld:
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
    return azure_world({**BASE, **QUOTA}, state, FakeBundleStore())


def add_group(world: AzureWorld, name: str, tags: dict[str, str] | None) -> None:
    from azure.mgmt.containerinstance import models as m

    body = m.ContainerGroup(location="westeurope", os_type="Linux", tags=tags, containers=[m.Container(
        name="agent", image="fakeacr.azurecr.io/prefect-flows/demo:old",
        resources=m.ResourceRequirements(requests=m.ResourceRequests(cpu=1, memory_in_gb=1)))])
    world.clients.aci.container_groups.begin_create_or_update("agents", name, body, polling=False)


def populate(world: AzureWorld) -> str:
    """One real deploy, then the leftovers of a long, messy history."""
    assert deploy(world).status is RunStatus.SUCCEEDED
    current = world.services.state.module("demo").value.agent.name  # type: ignore[union-attr]
    tagged = {"managed-by": "prefect-collective-deployer", "module": "demo", "revision": "0ld-0ld"}
    for n in range(250):
        add_group(world, f"agent-demo-2026010{n % 9 + 1}{n:06d}", tagged)  # superseded, long ago
    for n in range(30):
        add_group(world, f"agent-demo-2025{n:010d}", None)  # made by the old deploy.sh for demo
    for n in range(10):
        add_group(world, f"agent-mkt-2025{n:010d}", None)  # old deploy.sh, module not migrated yet
    for n in range(200):
        world.azure.acr.push("prefect-flows/demo", f"old-{n:03d}")
    world.azure.clock.advance(3 * 86400)  # all of it is days old now
    return current


def test_cleanup_deletes_within_the_quota_and_defers_the_rest_to_the_next_run(world: AzureWorld) -> None:
    current = populate(world)
    world.azure.throttle("ContainerGroups_Delete", times=12, retry_after=3)
    first = run_cleanup(world.services)
    deleted = [i for i in first.items if i.kind == "agent" and i.outcome == "deleted"]
    deferred = [i for i in first.items if i.kind == "agent" and i.outcome == "deferred"]
    # 280 to delete, 100 per 5 minutes, a 500 s budget: about two windows' worth now (the 429 waits
    # push the second window a little later), the rest next time
    assert 190 <= len(deleted) <= 200 and len(deleted) + len(deferred) == 280
    # never above the quota; how close to it depends on how the deletes' threads and the 429
    # waits interleave on the shared simulated clock (the count above says the quota is used)
    assert 95 <= world.azure.peak("ContainerGroups_Delete", timedelta(seconds=300)) <= 100
    assert world.azure.calls["ContainerGroups_Delete"] == len(deleted) + 12  # each 429 retried after its Retry-After
    assert "delete quota" in deferred[0].reason
    kept = {i.target: i.reason for i in first.items if i.kind == "agent" and i.outcome == "kept"}
    assert kept[current] == "current agent of demo"
    assert all("old deploy.sh" in kept[f"agent-mkt-2025{n:010d}"] for n in range(10))
    assert last_report(world.services).report_id == first.report_id  # type: ignore[union-attr]

    world.azure.clock.advance(3600)  # the next night
    second = run_cleanup(world.services)
    assert not [i for i in second.items if i.outcome in ("deferred", "failed")]
    live = sorted(n for (_, n), g in world.azure.aci.groups.items() if g.deleting_since is None)
    assert live == sorted([current] + [f"agent-mkt-2025{n:010d}" for n in range(10)])


def test_quota_usage_carries_over_between_runs() -> None:
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
    world = azure_world({**BASE, **QUOTA, "DEPLOYER_CLEANUP_BUDGET_SECONDS": "1500"}, state,
                        FakeBundleStore())
    populate(world)
    tagged = {"managed-by": "prefect-collective-deployer", "module": "demo", "revision": "0ld-0ld"}
    for n in range(120):
        add_group(world, f"agent-demo-20260201{n:06d}", tagged)
    world.azure.clock.advance(86400)
    first = run_cleanup(world.services)  # 400 to delete: the hour allows 300
    world.azure.clock.advance(60)  # run again at once: the hour is spent, whatever the 5 minutes say
    again = run_cleanup(world.services)
    count = [len([i for i in r.items if i.kind == "agent" and i.outcome == "deleted"]) for r in (first, again)]
    assert count == [300, 0]
    assert world.azure.peak("ContainerGroups_Delete", timedelta(hours=1)) == 300
    world.azure.clock.advance(3600)
    assert len([i for i in run_cleanup(world.services).items if i.kind == "agent" and i.outcome == "deleted"]) == 100


def test_image_tags_beyond_the_last_revisions_go_and_the_current_image_stays(world: AzureWorld) -> None:
    populate(world)
    report = run_cleanup(world.services)
    state = world.services.state.module("demo").value  # type: ignore[union-attr]
    manifests = world.azure.acr.repositories["prefect-flows/demo"]
    assert state.current.image_digest in manifests  # type: ignore[union-attr]
    images = {d: m for d, m in manifests.items() if not all(t.startswith("cache_") for t in m.tags)}
    assert len(images) <= 3 + 1  # the newest 3 tags, and the current image
    assert len(manifests) - len(images) == 1  # and ACR Tasks' build cache, kept
    assert len([i for i in report.items if i.kind == "manifest" and i.outcome == "deleted"]) >= 197


def test_dry_run_changes_nothing(world: AzureWorld) -> None:
    populate(world)
    groups = copy.deepcopy({k: (g.body, g.deleting_since) for k, g in world.azure.aci.groups.items()})
    repos = copy.deepcopy({r: {d: list(m.tags) for d, m in ms.items()} for r, ms in world.azure.acr.repositories.items()})
    docs = {k: world.services.state.docs.get(k) for k in world.services.state.docs.list("")}
    calls_before = len(world.azure.log)
    plan = run_cleanup(world.services, dry_run=True)
    assert plan.dry_run and [i for i in plan.items if i.outcome == "planned"]
    assert {k: (g.body, g.deleting_since) for k, g in world.azure.aci.groups.items()} == groups
    assert {r: {d: list(m.tags) for d, m in ms.items()} for r, ms in world.azure.acr.repositories.items()} == repos
    assert {k: world.services.state.docs.get(k) for k in world.services.state.docs.list("")} == docs
    writes = [k for k, method, *_ in world.azure.log[calls_before:] if method in ("DELETE", "PUT", "PATCH")]
    assert writes == []


def test_an_overlapping_cleanup_is_refused(world: AzureWorld) -> None:
    with world.services.state.lock("_cleanup"), pytest.raises(LockBusy, match="another cleanup is running"):
        run_cleanup(world.services)


def test_a_module_in_rotation_is_left_alone(world: AzureWorld) -> None:
    populate(world)
    with world.services.state.lock("demo"):
        report = run_cleanup(world.services)
    assert not [i for i in report.items if i.module == "demo" and i.kind in ("agent", "manifest", "tag")
                and i.outcome == "deleted"]


def test_seed_groups_are_recognised(world: AzureWorld) -> None:
    populate(world)
    names = {a.name for a in world.services.runtime.list("demo", detailed=False)}
    assert {f"agent-demo-2025{n:010d}" for n in range(30)} <= names
    assert not any(n.startswith("agent-mkt") for n in names)


