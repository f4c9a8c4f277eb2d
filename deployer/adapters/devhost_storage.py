"""Storage plumbing of ``deployer dev``, done the way the Functions host does it.

* Blob receipts: the host remembers each (blob, etag) it has processed as a blob under
  ``azure-webjobs-hosts/blobreceipts/<host id>/<function>/<container>/<blob>``; a new etag (an
  overwrite) triggers again. Failed blobs are retried and, after five failures, reported on the
  ``webjobs-blobtrigger-poison`` queue.
* Queue messages come from ``StorageQueue`` (receive / hide / delete) and go to ``<queue>-poison``
  after ``maxDequeueCount`` failures.
"""

from __future__ import annotations

import json

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from deployer.adapters.storage_errors import storage_errors
from deployer.adapters.storage_queue import StorageQueue, queue_client

HOSTS_CONTAINER = "azure-webjobs-hosts"
BLOB_POISON_QUEUE = "webjobs-blobtrigger-poison"


class BlobReceipts:
    def __init__(self, connection: str, host_id: str, function: str) -> None:
        self._service = BlobServiceClient.from_connection_string(connection)
        self._hosts = self._service.get_container_client(HOSTS_CONTAINER)
        self._prefix = f"blobreceipts/{host_id}/{function}/"
        self._where = self._service.url
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            with storage_errors("create the host container", self._where):
                try:
                    self._hosts.create_container()
                except ResourceExistsError:
                    pass
            self._ready = True

    def blobs(self, container: str) -> list[tuple[str, str]]:
        """(name, etag) of every blob in ``container`` (empty if it does not exist yet)."""
        client = self._service.get_container_client(container)
        with storage_errors(f"list container {container}", self._where):
            try:
                return [(b.name, str(b.etag).strip('"')) for b in client.list_blobs()]
            except ResourceNotFoundError:
                return []

    def seen(self, container: str) -> dict[str, str]:
        """blob name -> etag of the receipts written for ``container``."""
        self._ensure()
        prefix = f"{self._prefix}{container}/"
        with storage_errors("read blob receipts", self._where):
            return {b.name[len(prefix):]: (b.metadata or {}).get("etag", "")
                    for b in self._hosts.list_blobs(name_starts_with=prefix, include=["metadata"])}

    def write(self, container: str, blob: str, etag: str) -> None:
        self._ensure()
        receipt = self._hosts.get_blob_client(f"{self._prefix}{container}/{blob}")
        with storage_errors("write a blob receipt", self._where):
            receipt.upload_blob(b"", overwrite=True, metadata={"etag": etag.strip('"')})

    def poison(self, connection: str, function: str, container: str, blob: str, etag: str) -> None:
        queue = StorageQueue(queue_client(connection, BLOB_POISON_QUEUE))
        queue.send(json.dumps({"Type": "blob", "FunctionId": function, "ContainerName": container,
                               "BlobName": blob, "ETag": etag}).encode())


def poison_queue(connection: str, name: str) -> StorageQueue:
    return StorageQueue(queue_client(connection, f"{name}-poison"))


def request_queue(connection: str, name: str) -> StorageQueue:
    return StorageQueue(queue_client(connection, name))
