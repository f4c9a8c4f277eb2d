"""The deployer's own storage: state documents, bundles and the request queue on one account.

Built from the ``AzureWebJobsStorage`` connection string (Azurite locally), or, identity-only, from
``AzureWebJobsStorage__accountName`` (or the ``__blobServiceUri``/``__queueServiceUri`` pair) with
``DefaultAzureCredential``, as the Functions host reads the same settings: the app's managed
identity in Azure (``__clientId`` names a user-assigned one), ``az login`` on a laptop, with shared
keys disabled on the account. The identity needs Storage Blob Data Owner (leases, containers) and
Storage Queue Data Contributor on the account. Interactive callers
(the CLI) get a short retry policy: storage's default backs off 15 s, 60 s, ... which is right for
a queue-driven function and far too long for someone at a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.storage.blob import BlobServiceClient, LinearRetry

from deployer.adapters.blob_bundles import BlobBundleStore
from deployer.adapters.blob_code import BlobCodeStore
from deployer.adapters.blob_documents import BlobDocumentStore
from deployer.adapters.storage_queue import StorageQueue, identity_queue_client, queue_client
from deployer.config import Settings

INTERACTIVE_RETRIES = 3
INTERACTIVE_BACKOFF_SECONDS = 1


@dataclass(frozen=True)
class Storage:
    documents: BlobDocumentStore
    bundles: BlobBundleStore
    queue: StorageQueue
    code: BlobCodeStore


def storage_from(settings: Settings, *, interactive: bool = False, credential: Any = None) -> Storage:
    """``credential``: a token credential for identity-only storage (default: DefaultAzureCredential)."""
    options: dict[str, Any] = ({"retry_policy": LinearRetry(backoff=INTERACTIVE_BACKOFF_SECONDS,
                                                            retry_total=INTERACTIVE_RETRIES)}
                               if interactive else {})
    if settings.storage_identity:
        credential = credential or storage_credential(settings)
        blobs = BlobServiceClient(settings.blob_service_url, credential=credential, **options)
        queue = identity_queue_client(settings.queue_service_url, settings.request_queue,
                                      credential, **options)
    else:
        connection = settings.storage_connection.reveal()
        blobs = BlobServiceClient.from_connection_string(connection, **options)
        queue = queue_client(connection, settings.request_queue, **options)
    return Storage(documents=BlobDocumentStore(blobs, settings.state_container),
                   bundles=BlobBundleStore(blobs, settings.bundles_container),
                   queue=StorageQueue(queue), code=BlobCodeStore(blobs, settings.code_container))


def storage_credential(settings: Settings) -> Any:
    """The credential the Functions host would use for these settings."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True,
                                  managed_identity_client_id=settings.storage_client_id or None)
