"""In-memory ``DocumentStore`` with the blob semantics the contract tests pin down:
etags change on every write, create-only and If-Match writes, append logs, expiring leases."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable

from deployer.errors import StateConflict
from deployer.ports.storage import StoredDocument


class MemoryDocumentStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._docs: dict[str, StoredDocument] = {}
        self._leases: dict[str, tuple[str, float, float]] = {}  # key -> (id, expires, seconds)
        self._etags = itertools.count(1)
        self._lock = threading.Lock()
        self._clock = clock

    def _etag(self) -> str:
        return f'"0x{next(self._etags):08X}"'

    def get(self, key: str) -> StoredDocument | None:
        with self._lock:
            return self._docs.get(key)

    def create(self, key: str, body: bytes) -> str:
        with self._lock:
            if key in self._docs:
                raise StateConflict(f"create state document {key}: it already exists")
            etag = self._etag()
            self._docs[key] = StoredDocument(bytes(body), etag)
            return etag

    def replace(self, key: str, body: bytes, etag: str) -> str:
        with self._lock:
            current = self._docs.get(key)
            if current is None:
                raise StateConflict(f"update state document {key}: it was deleted")
            if current.etag != etag:
                raise StateConflict(f"update state document {key}: it was changed by someone else")
            new = self._etag()
            self._docs[key] = StoredDocument(bytes(body), new)
            return new

    def delete(self, key: str) -> None:
        with self._lock:
            self._docs.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._docs if k.startswith(prefix))

    def append(self, key: str, line: bytes) -> None:
        with self._lock:
            current = self._docs.get(key)
            body = (current.body if current else b"") + line
            self._docs[key] = StoredDocument(body, self._etag())

    def read_log(self, key: str) -> bytes | None:
        doc = self.get(key)
        return None if doc is None else doc.body

    def acquire_lease(self, key: str, seconds: int) -> str | None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[1] > self._clock():
                return None
            if key not in self._docs:
                self._docs[key] = StoredDocument(b"", self._etag())
            lease_id = str(uuid.uuid4())
            self._leases[key] = (lease_id, self._clock() + seconds, float(seconds))
            return lease_id

    def renew_lease(self, key: str, lease_id: str) -> bool:
        with self._lock:
            held = self._leases.get(key)
            if held is None or held[0] != lease_id:
                return False
            self._leases[key] = (lease_id, self._clock() + held[2], held[2])
            return True

    def release_lease(self, key: str, lease_id: str) -> None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] == lease_id:
                del self._leases[key]
