"""The deployer's own storage: state documents, bundles and the request queue on one account.

Built from the ``AzureWebJobsStorage`` connection string (Azurite locally). Interactive callers
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
from deployer.adapters.storage_queue import StorageQueue, queue_client
from deployer.config import Settings

INTERACTIVE_RETRIES = 3
INTERACTIVE_BACKOFF_SECONDS = 1


@dataclass(frozen=True)
class Storage:
    documents: BlobDocumentStore
    bundles: BlobBundleStore
    queue: StorageQueue
    code: BlobCodeStore


def storage_from(settings: Settings, *, interactive: bool = False) -> Storage:
    connection = settings.storage_connection.reveal()
    options: dict[str, Any] = ({"retry_policy": LinearRetry(backoff=INTERACTIVE_BACKOFF_SECONDS,
                                                            retry_total=INTERACTIVE_RETRIES)}
                               if interactive else {})
    blobs = BlobServiceClient.from_connection_string(connection, **options)
    return Storage(documents=BlobDocumentStore(blobs, settings.state_container),
                   bundles=BlobBundleStore(blobs, settings.bundles_container),
                   queue=StorageQueue(queue_client(connection, settings.request_queue, **options)),
                   code=BlobCodeStore(blobs, settings.code_container))
