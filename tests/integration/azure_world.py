"""The azure backend wired to the fake Azure endpoints: real SDK clients, real adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deployer.adapters.aci_runtime import AciAgentRuntime
from deployer.adapters.acr_builder import AcrImageBuilder
from deployer.adapters.azure_clients import AzureClients
from deployer.adapters.keyvault_secrets import KeyVaultSecretResolver
from deployer.bootstrap import AppServices
from deployer.config import Settings
from deployer.models import Request, RunRecord
from deployer.ports.code import CodeStore
from deployer.ports.storage import BundleStore, RequestQueue
from deployer.request_queue import new_record, submit
from deployer.state import StateRepository
from tests.fakes.azure import FakeAzure
from tests.fakes.azure.rbac import Rbac
from tests.fakes.platform import FakeCodeStore, FakeOrchestrator, FakeQueue
from tests.fakes.trigger import QueueTrigger

SUBSCRIPTION = "5f1c6f0a-9d3e-4b8e-a6f1-0c2d3e4f5a6b"  # ARM subscription ids are GUIDs
IDENTITY = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/agent-pull"
AZURE_SETTINGS = {
    "DEPLOYER_BACKEND": "azure", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "DEPLOYER_RESOURCE_GROUP": "agents",
    "DEPLOYER_LOCATION": "westeurope", "DEPLOYER_REGISTRY": "fakeacr", "DEPLOYER_AGENT_IDENTITY": IDENTITY,
    "PREFECT_API_URL": "https://api.prefect.cloud/api/accounts/acc/workspaces/ws",
    "PREFECT_API_KEY": "pnu_cloud_api_key_secret", "DEPLOYER_HEALTH_TIMEOUT_SECONDS": "300",
    "DEPLOYER_DRAIN_TIMEOUT_SECONDS": "600", "DEPLOYER_AGENT_IDENTITY_CLIENT_ID": "00000000-0000-0000-0000-0000000c11e7",
    "DEPLOYER_WEBHOOK_TOKEN": "azure-world-webhook-token",
    # as infra/ provisions it: the registry in the app's resource group, the agents in their own
    "DEPLOYER_REGISTRY_RESOURCE_GROUP": "rg-app",
}
#: the vault the template's Key Vault Secrets User assignment is on
VAULT = "kv-demo"


def template_rbac(settings: Settings) -> Rbac:
    """The role assignments infra/ makes, over this world's resources."""
    sub = f"/subscriptions/{settings.subscription_id}"
    app_rg = f"{sub}/resourceGroups/{settings.registry_group}"
    return Rbac({
        "registry": f"{app_rg}/providers/Microsoft.ContainerRegistry/registries/{settings.registry}",
        "agents-rg": f"{sub}/resourceGroups/{settings.resource_group}",
        "agent-identity": settings.agent_identity,
        "vault": f"{app_rg}/providers/Microsoft.KeyVault/vaults/{VAULT}",
        # storage is Azurite (or a fake store) in these tests: its RBAC is not emulated
    })


@dataclass
class AzureWorld:
    azure: FakeAzure
    services: AppServices
    orchestrator: FakeOrchestrator
    clients: AzureClients
    trigger: QueueTrigger | None = None

    def run(self, request: Request, *, settled: bool = False) -> RunRecord:
        """Submit the request; the simulated queue trigger runs it to its end (or until it is
        settled)."""
        assert self.trigger is not None, "this world's queue is a real one"
        submit(self.services, new_record(request))

        def done() -> bool:
            got = self.services.state.run(request.module, request.request_id)
            return got is not None and (got.value.status.settled if settled else got.value.status.finished)

        self.trigger.pump(until=done)
        got = self.services.state.run(request.module, request.request_id)
        assert got is not None
        return got.value

    def deliver_pushes(self) -> list[Any]:
        """Every push the registry made since the last call, delivered as its webhook delivers
        it (the scope-less ACR webhook, or Event Grid's ImagePushed): the replies."""
        from deployer.pipeline.webhook import TOKEN_HEADER, receive_webhook

        token = self.services.settings.webhook_token.reveal()
        return [receive_webhook(self.services, "POST", {TOKEN_HEADER: token}, json.dumps(event).encode())
                for event in self.azure.acr.pending_events()]


def azure_world(base: dict[str, str], state: StateRepository, bundles: BundleStore,
                queue: RequestQueue | None = None, azure: FakeAzure | None = None,
                code: CodeStore | None = None, *, enforce_roles: bool = True) -> AzureWorld:
    """The azure backend on the fake endpoints. Without ``queue``, a simulated queue and queue
    trigger on the fake's clock (``world.run``); without ``code``, a code store that no image
    can pull from (every change takes the image path). Every call is authorized against the
    role assignments infra/ makes (``template_rbac``), as Azure would."""
    azure = azure or FakeAzure()
    clock = azure.clock

    def advance_to(when: datetime) -> None:
        clock.advance((when - clock.now()).total_seconds())

    trigger = None
    if queue is None:
        queue = FakeQueue(clock.now)
    settings = Settings.from_env({**base, **AZURE_SETTINGS})
    if enforce_roles and azure.rbac is None:
        azure.rbac = template_rbac(settings)
    clients = AzureClients(settings, credential=azure.credential, transport=azure.transport)
    orchestrator = FakeOrchestrator(live=lambda pool: {
        n for n in azure.aci.running("agents") if n.startswith(f"agent-{pool}-")}, clock=clock.now)
    services = AppServices(settings, state, bundles, queue,
                        builder=AcrImageBuilder(clients),
                        runtime=AciAgentRuntime(clients), orchestrator=orchestrator, azure=clients,
                        code=code or FakeCodeStore(),
                        secrets=KeyVaultSecretResolver(credential=azure.credential, transport=azure.transport),
                        sleep=azure.clock.sleep, now=azure.clock.now)
    if isinstance(queue, FakeQueue):
        trigger = QueueTrigger(services, queue, advance_to)
    if isinstance(services.code, FakeCodeStore):  # the agents' warm checkers, on the fake ACI
        services.code.on_check = lambda agent, request, pull, entrypoints: azure.aci.answer_check(
            agent, request, orchestrator.code_check(pull, entrypoints))
    else:  # the real code store's blob channel: the fake container's checker reads it and answers
        _answer_from_channel(services.code, azure, orchestrator)
    return AzureWorld(azure, services, orchestrator, clients, trigger)


def _answer_from_channel(code: Any, azure: Any, orchestrator: FakeOrchestrator) -> None:
    """After each check request lands in the real store's channel (a blob the agent would poll),
    the fake ACI container of that agent answers it in its log, from what the blob says."""
    ask = code.ask_check

    def ask_and_answer(agent: str, request_id: str, pull_steps: list[dict[str, Any]],
                       entrypoints: list[tuple[str, str]]) -> None:
        ask(agent, request_id, pull_steps, entrypoints)
        channel = code.check_channel(agent)
        blob = code._container.download_blob(f"{channel['prefix']}{request_id}.json").readall()
        body = json.loads(blob)
        azure.aci.answer_check(agent, request_id, orchestrator.code_check(
            body["pull"], [tuple(e) for e in body["entrypoints"]]))

    code.ask_check = ask_and_answer
