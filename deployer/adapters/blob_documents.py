"""``DocumentStore`` on Azure Blob Storage (Azurite locally).

Create-only writes use ``If-None-Match: *``, replacements ``If-Match: <etag>``; history logs are
append blobs; module locks are blob leases on empty blobs under ``locks/``.
"""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, ContentSettings

from deployer.adapters.storage_errors import storage_errors
from deployer.errors import NotFound, StateConflict
from deployer.ports.storage import StoredDocument

JSON = ContentSettings(content_type="application/json")
_LEASE_GONE = {"LeaseIdMismatchWithLeaseOperation", "LeaseLost", "LeaseNotPresentWithLeaseOperation",
               "LeaseIdMismatchWithBlobOperation", "BlobNotFound"}


class BlobDocumentStore:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container = service.get_container_client(container)
        self._where = service.url
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            with storage_errors(f"create state container {self._container.container_name}",
                                self._where):
                try:
                    self._container.create_container()
                except ResourceExistsError:
                    pass
            self._ready = True

    def _client(self, key: str) -> BlobClient:
        self._ensure()
        return self._container.get_blob_client(key)

    def get(self, key: str) -> StoredDocument | None:
        blob = self._client(key)
        with storage_errors(f"read state document {key}", self._where):
            try:
                downloader = blob.download_blob()
            except ResourceNotFoundError:
                return None
            body = downloader.readall()
        return StoredDocument(body=body, etag=str(downloader.properties.etag))

    def create(self, key: str, body: bytes) -> str:
        blob = self._client(key)
        with storage_errors(f"create state document {key}", self._where):
            result = blob.upload_blob(body, overwrite=False, content_settings=JSON)
        return str(result["etag"])

    def replace(self, key: str, body: bytes, etag: str) -> str:
        blob = self._client(key)
        try:
            with storage_errors(f"update state document {key}", self._where):
                result = blob.upload_blob(body, overwrite=True, content_settings=JSON, etag=etag,
                                          match_condition=MatchConditions.IfNotModified)
        except NotFound as exc:
            raise StateConflict(f"update state document {key}: it was deleted") from exc
        return str(result["etag"])

    def delete(self, key: str) -> None:
        blob = self._client(key)
        with storage_errors(f"delete state document {key}", self._where):
            try:
                blob.delete_blob(delete_snapshots="include")
            except ResourceNotFoundError:
                pass

    def list(self, prefix: str) -> list[str]:
        self._ensure()
        with storage_errors(f"list state documents {prefix}*", self._where):
            return sorted(self._container.list_blob_names(name_starts_with=prefix))

    def append(self, key: str, line: bytes) -> None:
        blob = self._client(key)
        with storage_errors(f"append to {key}", self._where):
            try:
                blob.create_append_blob(match_condition=MatchConditions.IfMissing)
            except HttpResponseError as exc:  # 409/412: the log exists already
                if exc.status_code not in (409, 412):
                    raise
            blob.append_block(line)

    def read_log(self, key: str) -> bytes | None:
        blob = self._client(key)
        with storage_errors(f"read {key}", self._where):
            try:
                return blob.download_blob().readall()
            except ResourceNotFoundError:
                return None

    def acquire_lease(self, key: str, seconds: int) -> str | None:
        blob = self._client(key)
        with storage_errors(f"lock {key}", self._where):
            for _ in range(2):
                try:
                    lease = BlobLeaseClient(blob)
                    lease.acquire(lease_duration=seconds)
                    return str(lease.id)
                except ResourceNotFoundError:
                    try:
                        blob.upload_blob(b"", overwrite=False)
                    except (ResourceExistsError, HttpResponseError):
                        pass  # created meanwhile, possibly already leased: try again
                except HttpResponseError as exc:
                    if _code(exc) == "LeaseAlreadyPresent" or exc.status_code == 409:
                        return None
                    raise
        return None

    def renew_lease(self, key: str, lease_id: str) -> bool:
        blob = self._client(key)
        with storage_errors(f"renew lock {key}", self._where):
            try:
                BlobLeaseClient(blob, lease_id=lease_id).renew()
            except HttpResponseError as exc:
                if _code(exc) in _LEASE_GONE or exc.status_code in (404, 409):
                    return False
                raise
        return True

    def release_lease(self, key: str, lease_id: str) -> None:
        blob = self._client(key)
        with storage_errors(f"unlock {key}", self._where):
            try:
                BlobLeaseClient(blob, lease_id=lease_id).release()
            except HttpResponseError as exc:
                if _code(exc) not in _LEASE_GONE and exc.status_code not in (404, 409):
                    raise


def _code(exc: HttpResponseError) -> str | None:
    return getattr(exc, "error_code", None)
