"""``BundleStore`` on Azure Blob Storage: the bundles container (private: bundles hold .env)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings

from deployer.adapters.storage_errors import storage_errors
from deployer.ports.storage import BundleInfo

GZIP = ContentSettings(content_type="application/gzip")


class BlobBundleStore:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container = service.get_container_client(container)
        self._where = service.url
        self._ready = False

    @property
    def container(self) -> str:
        return str(self._container.container_name)

    def _ensure(self) -> None:
        if not self._ready:
            with storage_errors(f"create bundles container {self.container}", self._where):
                try:
                    self._container.create_container()
                except ResourceExistsError:
                    pass
            self._ready = True

    def _client(self, name: str) -> BlobClient:
        self._ensure()
        return self._container.get_blob_client(name)

    def upload(self, name: str, data: IO[bytes], metadata: dict[str, str]) -> BundleInfo:
        blob = self._client(name)
        with storage_errors(f"upload bundle {name}", self._where):
            blob.upload_blob(data, overwrite=True, metadata=metadata, content_settings=GZIP,
                             max_concurrency=2)
            return _info(name, blob.get_blob_properties())

    def open(self, name: str) -> tuple[BundleInfo, Iterator[bytes]]:
        blob = self._client(name)
        with storage_errors(f"download bundle {name}", self._where):
            downloader = blob.download_blob()
        info = _info(name, downloader.properties)

        def chunks() -> Iterator[bytes]:
            # later ranges are fetched with If-Match on the first response's etag, so the
            # chunks belong to the version ``info`` describes
            with storage_errors(f"download bundle {name}", self._where):
                yield from downloader.chunks()

        return info, chunks()

    def info(self, name: str) -> BundleInfo | None:
        blob = self._client(name)
        with storage_errors(f"read bundle {name}", self._where):
            try:
                return _info(name, blob.get_blob_properties())
            except ResourceNotFoundError:
                return None

    def list(self, prefix: str = "") -> list[BundleInfo]:
        self._ensure()
        with storage_errors(f"list bundles {prefix}*", self._where):
            return [_info(b.name, b) for b in self._container.list_blobs(
                name_starts_with=prefix or None, include=["metadata"])]

    def delete(self, name: str) -> None:
        blob = self._client(name)
        with storage_errors(f"delete bundle {name}", self._where):
            try:
                blob.delete_blob(delete_snapshots="include")
            except ResourceNotFoundError:
                pass


def _info(name: str, props: Any) -> BundleInfo:
    return BundleInfo(name=name, etag=str(props.etag), size=int(props.size),
                      last_modified=props.last_modified, metadata=dict(props.metadata or {}))
