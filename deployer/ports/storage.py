"""Storage: small documents with leases (the state), the bundles container and the request queue."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Protocol


@dataclass(frozen=True)
class StoredDocument:
    body: bytes
    etag: str


class DocumentStore(Protocol):
    """Small JSON documents with optimistic concurrency, append-only logs and leases.

    ``create`` and ``replace`` raise ``StateConflict`` when they lose a race (the document exists /
    its etag moved on / it was deleted); nothing is ever overwritten unconditionally.
    """

    def get(self, key: str) -> StoredDocument | None: ...

    def create(self, key: str, body: bytes) -> str: ...

    def replace(self, key: str, body: bytes, etag: str) -> str: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def append(self, key: str, line: bytes) -> None: ...

    def read_log(self, key: str) -> bytes | None: ...

    def acquire_lease(self, key: str, seconds: int) -> str | None:
        """Lease id, or None while someone else holds it. Creates the lock blob if missing."""
        ...

    def renew_lease(self, key: str, lease_id: str) -> bool:
        """False when the lease is no longer ours (it expired and someone else took it)."""
        ...

    def release_lease(self, key: str, lease_id: str) -> None: ...


@dataclass(frozen=True)
class BundleInfo:
    name: str
    etag: str
    size: int
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)


class BundleStore(Protocol):
    """The bundles container: uploaded flow bundles (they hold ``.env``, so it is private)."""

    def upload(self, name: str, data: IO[bytes], metadata: dict[str, str]) -> BundleInfo: ...

    def open(self, name: str) -> tuple[BundleInfo, Iterator[bytes]]:
        """The blob's properties and its content as chunks, read as one consistent version."""
        ...

    def info(self, name: str) -> BundleInfo | None: ...

    def list(self, prefix: str = "") -> list[BundleInfo]: ...

    def delete(self, name: str) -> None: ...


class RequestQueue(Protocol):
    def send(self, body: bytes, *, delay_seconds: int = 0) -> None:
        """Enqueue ``body``; it becomes visible to the queue trigger after ``delay_seconds``."""
        ...
