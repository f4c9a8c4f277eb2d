"""The azure backend wired to the fake Azure endpoints: real SDK clients, real adapters."""

from __future__ import annotations

from dataclasses import dataclass

from deployer.adapters.aci_runtime import AciAgentRuntime
from deployer.adapters.acr_builder import AcrImageBuilder
from deployer.adapters.azure_clients import AzureClients
from deployer.bootstrap import Services
from deployer.config import Settings
from deployer.ports import BundleStore, RequestQueue
from deployer.state import StateRepository
from tests.fakes.azure import FakeAzure
from tests.fakes.platform import FakeOrchestrator

IDENTITY = "/subscriptions/sub-1/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/agent-pull"
AZURE_SETTINGS = {
    "DEPLOYER_BACKEND": "azure", "AZURE_SUBSCRIPTION_ID": "sub-1", "DEPLOYER_RESOURCE_GROUP": "agents",
    "DEPLOYER_LOCATION": "westeurope", "DEPLOYER_REGISTRY": "fakeacr", "DEPLOYER_AGENT_IDENTITY": IDENTITY,
    "PREFECT_API_URL": "https://api.prefect.cloud/api/accounts/acc/workspaces/ws",
    "PREFECT_API_KEY": "pnu_cloud_api_key_secret", "DEPLOYER_HEALTH_TIMEOUT_SECONDS": "300",
    "DEPLOYER_DRAIN_TIMEOUT_SECONDS": "600",
}


@dataclass
class AzureWorld:
    azure: FakeAzure
    services: Services
    orchestrator: FakeOrchestrator
    clients: AzureClients


def azure_world(base: dict[str, str], state: StateRepository, bundles: BundleStore,
                queue: RequestQueue, azure: FakeAzure | None = None) -> AzureWorld:
    azure = azure or FakeAzure()
    settings = Settings.from_env({**base, **AZURE_SETTINGS})
    clients = AzureClients(settings, credential=azure.credential, transport=azure.transport)
    orchestrator = FakeOrchestrator(live=lambda pool: {
        n for n in azure.aci.running("agents") if n.startswith(f"agent-{pool}-")})
    services = Services(settings, state, bundles, queue,
                        builder=AcrImageBuilder(clients, sleep=azure.clock.sleep, now=azure.clock.now),
                        runtime=AciAgentRuntime(clients), orchestrator=orchestrator, azure=clients,
                        sleep=azure.clock.sleep, now=azure.clock.now)
    return AzureWorld(azure, services, orchestrator, clients)
