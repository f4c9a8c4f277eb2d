"""The fake Azure refuses what the template's roles do not grant, as Azure would: every role
assignment infra/ makes is needed by a step of the Azure path, and dropping it (from the parsed
template, ``Rbac.without``) fails that step with the error Azure gives (AuthorizationFailed,
LinkedAuthorizationFailed, the registry's DENIED, Key Vault's ForbiddenByRbac, an image the agent
cannot pull). The whole path passing with all of them is the rest of the azure suite, which runs
under the same enforcement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from deployer.models import RunRecord, RunStatus
from deployer.pipeline.cleanup import run_cleanup
from deployer.state import StateRepository
from tests.builders import module_tar
from tests.fakes.azure import FakeAzure
from tests.fakes.azure.rbac import Role, builtin_roles, template_assignments
from tests.fakes.documents import MemoryDocumentStore
from tests.fakes.platform import FakeBundleStore
from tests.integration.azure_world import AzureWorld, azure_world, template_rbac
from tests.integration.test_azure_backend import BASE, deploy

#: assignments whose use the fake cannot show: storage here is Azurite or a fake store, and
#: neither checks roles (Azurite accepts any well-formed token); their need is said next to each
#: in infra/resources.bicep and checked live (tests/live)
NOT_EMULATED = {
    "appBlobs": "Blob Data Owner on the account: state, bundles, leases, the host's own storage",
    "appQueues": "Queue Data Contributor: the request queue",
    "agentReadsCode": "Blob Data Reader on deployer-code: flow runs fetch code-only revisions",
    "operatorBlobs": "the person running azd reads state and uploads bundles",
    "operatorQueues": "the person running azd enqueues CLI requests",
}


def world_without(assignment: str | None) -> AzureWorld:
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
    world = azure_world(BASE, state, FakeBundleStore())
    if assignment is not None:
        world.azure.rbac = world.azure.rbac.without(assignment)  # type: ignore[union-attr]
    world.services.settings = replace(world.services.settings, health_timeout_seconds=300)
    return world


# each step returns why it failed ("" when it worked)


def a_first_deploy(world: AzureWorld) -> str:
    record: RunRecord = deploy(world)
    return "" if record.status is RunStatus.SUCCEEDED else str((record.error or {}).get("message", ""))


def a_cleanup_that_deletes_tags(world: AzureWorld) -> str:
    assert deploy(world).status is RunStatus.SUCCEEDED
    for n in range(8):
        world.azure.acr.push("prefect-flows/demo", f"old-{n}")
    world.azure.clock.advance(30 * 86400)
    report = run_cleanup(world.services)
    assert [i for i in report.items if i.kind in ("tag", "manifest") and i.outcome in ("deleted", "failed")]
    failed = [i for i in report.items if i.kind in ("tag", "manifest") and i.outcome == "failed"]
    return failed[0].error if failed else ""


def a_deploy_reading_a_key_vault_reference(world: AzureWorld) -> str:
    from deployer.pipeline.intake import accept_bundle

    world.azure.keyvault.set("kv-demo", "api-token", "kv-secret-value-123")
    bundles: FakeBundleStore = world.services.bundles  # type: ignore[assignment]
    bundles.put("demo/kv.tar.gz", module_tar("demo", changes={
        ".env": "API_TOKEN=@Microsoft.KeyVault(VaultName=kv-demo;SecretName=api-token)\n"}))
    record = accept_bundle(world.services, "demo/kv.tar.gz")  # pinned with the app's identity
    return str(record.error) if record.status is RunStatus.REJECTED else ""


#: the step each assignment is for, and what Azure answers without it
NEEDS: dict[str, tuple[Callable[[AzureWorld], str], str]] = {
    "appBuilds": (a_first_deploy, "AuthorizationFailed"),  # ACR Tasks: upload URL, schedule, runs
    "appReadsImages": (a_first_deploy, "DENIED"),  # the registry's tags: is the image built yet?
    "appDeletesImages": (a_cleanup_that_deletes_tags, "DENIED"),  # the nightly cleanup
    "manageAgents": (a_first_deploy, "AuthorizationFailed"),  # container groups in the agents' group
    "appAssignsAgentIdentity": (a_first_deploy, "LinkedAuthorizationFailed"),  # agents' identity
    "agentPull": (a_first_deploy, "Failed to pull image"),  # ACI pulls with the agents' identity
    "appSecrets": (a_deploy_reading_a_key_vault_reference, "Forbidden"),  # Key Vault references
}


def test_every_assignment_of_the_template_is_accounted_for() -> None:
    names = {a.name for a in template_assignments()}
    assert names == set(NEEDS) | set(NOT_EMULATED)


@pytest.mark.parametrize("assignment", sorted(NEEDS))
def test_dropping_an_assignment_fails_the_step_that_needs_it(assignment: str) -> None:
    step, error = NEEDS[assignment]
    assert step(world_without(None)) == ""  # with every assignment of the template, it works
    failure = step(world_without(assignment))
    assert error in failure, failure


def test_acrpush_alone_cannot_delete_an_image() -> None:
    """The role the app had before: it pushes and pulls, but a deletion is AcrDelete's."""
    world = world_without("appDeletesImages")
    world.azure.rbac = world.azure.rbac.with_role(  # type: ignore[union-attr]
        "appImages", "app", builtin_roles()["8311e382-0749-4cb8-b61a-304f252e45ec"], "registry")
    assert "DENIED" in a_cleanup_that_deletes_tags(world)


def test_the_app_cannot_register_a_resource_provider() -> None:
    world = world_without(None)
    azure: FakeAzure = world.azure
    azure.aci.registered = False
    record = deploy(world)
    assert record.status is RunStatus.FAILED and "az provider register" in str(record.error)
    assert azure.calls["Providers_Register"] <= 1


def test_a_role_grants_by_microsofts_wildcard_rules() -> None:
    contributor = builtin_roles()["b24988ac-6180-42a0-ab88-20f7382dd24c"]
    assert contributor.grants("Microsoft.ContainerInstance/containerGroups/write")
    assert not contributor.grants("Microsoft.Authorization/roleAssignments/write")  # notActions
    assert not contributor.grants("Microsoft.KeyVault/vaults/secrets/getSecret/action", data=True)
    operator = builtin_roles()["f1a07417-d97a-45cb-824c-7a7467783830"]
    assert operator.grants("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action")
    assert Role("r", ("microsoft.containerregistry/registries/*/read",)).grants(
        "Microsoft.ContainerRegistry/registries/pull/read")
    assert template_rbac  # the world's scopes come from the settings, the assignments from infra/
