"""The Azure SDK clients of the azure backend, built once and lazily (never at import).

Credentials: ``DefaultAzureCredential`` (the function app's managed identity in Azure, a
developer's ``az login`` locally). ``transport`` lets tests put the real clients on an in-process
fake of the endpoints; everything above the socket (auth, retries honouring ``Retry-After``,
long-running operations, paging) is the SDK's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from deployer.config import Settings

#: ARM throttles per subscription and answers 429 with Retry-After. azure-core waits out the
#: header itself, but by default gives up after 3 status retries; a throttling storm must not fail
#: a step, so allow 20 (5xx back off exponentially, at most 30 s apart). One call's retries stop
#: after ARM_RETRY_SECONDS, inside a step's own budget (``rotation.steps.STEP_WORK_SECONDS``): a
#: longer storm fails the step, and the queue delivers it again later. No second retry loop is
#: wrapped around this one.
ARM_RETRIES = 20
ARM_RETRY_BACKOFF_MAX = 30
ARM_RETRY_SECONDS = 120


class AzureClients:
    def __init__(self, settings: Settings, credential: Any = None,
                 transport: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._credential = credential
        self._transport = transport

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"retry_total": ARM_RETRIES, "retry_status": ARM_RETRIES,
                                   "retry_backoff_max": ARM_RETRY_BACKOFF_MAX,
                                   "timeout": ARM_RETRY_SECONDS}
        if self._transport is not None:
            options["transport"] = self._transport()
        return options

    @functools.cached_property
    def credential(self) -> Any:
        if self._credential is not None:
            return self._credential
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(exclude_interactive_browser_credential=True)

    @functools.cached_property
    def aci(self) -> Any:
        from azure.mgmt.containerinstance import ContainerInstanceManagementClient

        return ContainerInstanceManagementClient(self.credential, self.settings.subscription_id,
                                                 **self._options())

    @functools.cached_property
    def acr(self) -> Any:
        # the Tasks operations live only in azure-mgmt-containerregistry 14.x's versioned
        # namespaces; see acr_builder.py for why 2025-03-01-preview
        from azure.mgmt.containerregistry.v2025_03_01_preview import (
            ContainerRegistryManagementClient,
        )

        return ContainerRegistryManagementClient(self.credential, self.settings.subscription_id,
                                                 **self._options())

    @functools.cached_property
    def registry(self) -> Any:
        from azure.containerregistry import ContainerRegistryClient

        return ContainerRegistryClient(f"https://{self.settings.registry_server}", self.credential,
                                       **self._options())

    def blob(self, sas_url: str) -> Any:
        """A blob addressed by a SAS URL that ACR hands out (build source, run log)."""
        from azure.storage.blob import BlobClient

        return BlobClient.from_blob_url(sas_url, **self._options())
