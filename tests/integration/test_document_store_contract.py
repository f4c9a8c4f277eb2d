"""The same cases against the in-memory fake and against Azurite: the fake stays honest."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from deployer.adapters.blob_documents import BlobDocumentStore
from deployer.errors import StateConflict
from deployer.ports.storage import DocumentStore
from tests.fakes.documents import MemoryDocumentStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "azurite"])
def store_and_expire(request: pytest.FixtureRequest) -> Iterator[tuple[DocumentStore, Callable[[float], None]]]:
    """A store, and a function that lets ``seconds`` pass for its leases."""
    if request.param == "memory":
        clock = Clock()

        def advance(seconds: float) -> None:
            clock.now += seconds

        yield MemoryDocumentStore(clock=clock), advance
    else:
        connection = request.getfixturevalue("storage_connection")
        service = BlobServiceClient.from_connection_string(connection)
        container = f"contract-{uuid.uuid4().hex[:12]}"
        import time

        yield BlobDocumentStore(service, container), time.sleep
        service.delete_container(container)


@pytest.fixture
def store(store_and_expire: tuple[DocumentStore, Callable[[float], None]]) -> DocumentStore:
    return store_and_expire[0]


def test_missing_document_reads_as_none(store: DocumentStore) -> None:
    assert store.get("modules/nope.json") is None
    assert store.read_log("history/nope.jsonl") is None


def test_create_then_read_returns_body_and_etag(store: DocumentStore) -> None:
    etag = store.create("modules/a.json", b'{"x":1}')
    doc = store.get("modules/a.json")
    assert doc is not None and doc.body == b'{"x":1}' and doc.etag == etag


def test_create_is_create_only(store: DocumentStore) -> None:
    store.create("modules/a.json", b"first")
    with pytest.raises(StateConflict):
        store.create("modules/a.json", b"second")
    assert store.get("modules/a.json").body == b"first"  # type: ignore[union-attr]


def test_replace_with_current_etag_succeeds_and_moves_the_etag(store: DocumentStore) -> None:
    etag = store.create("modules/a.json", b"1")
    new = store.replace("modules/a.json", b"2", etag)
    assert new != etag
    assert store.get("modules/a.json").body == b"2"  # type: ignore[union-attr]


def test_replace_with_stale_etag_conflicts_and_changes_nothing(store: DocumentStore) -> None:
    etag = store.create("modules/a.json", b"1")
    store.replace("modules/a.json", b"2", etag)
    with pytest.raises(StateConflict):
        store.replace("modules/a.json", b"3", etag)
    assert store.get("modules/a.json").body == b"2"  # type: ignore[union-attr]


def test_replace_of_a_deleted_document_conflicts(store: DocumentStore) -> None:
    etag = store.create("modules/a.json", b"1")
    store.delete("modules/a.json")
    with pytest.raises(StateConflict):
        store.replace("modules/a.json", b"2", etag)
    assert store.get("modules/a.json") is None


def test_two_writers_racing_exactly_one_wins(store: DocumentStore) -> None:
    etag = store.create("modules/race.json", b"0")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def writer(body: bytes) -> None:
        barrier.wait()
        try:
            store.replace("modules/race.json", body, etag)
            outcomes.append("won")
        except StateConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(b,)) for b in (b"A", b"B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "won"]
    assert store.get("modules/race.json").body in (b"A", b"B")  # type: ignore[union-attr]


def test_list_returns_keys_under_a_prefix_in_order(store: DocumentStore) -> None:
    for key in ("runs/b/2.json", "runs/a/1.json", "modules/a.json", "runs/a/0.json"):
        store.create(key, b"{}")
    assert store.list("runs/a/") == ["runs/a/0.json", "runs/a/1.json"]
    assert store.list("runs/") == ["runs/a/0.json", "runs/a/1.json", "runs/b/2.json"]


def test_append_log_keeps_every_line_in_order(store: DocumentStore) -> None:
    for n in range(5):
        store.append("history/a.jsonl", f"{n}\n".encode())
    assert store.read_log("history/a.jsonl") == b"0\n1\n2\n3\n4\n"


def test_lease_is_exclusive_until_released(store: DocumentStore) -> None:
    first = store.acquire_lease("locks/a", 15)
    assert first is not None
    assert store.acquire_lease("locks/a", 15) is None
    assert store.renew_lease("locks/a", first) is True
    store.release_lease("locks/a", first)
    second = store.acquire_lease("locks/a", 15)
    assert second is not None and second != first


def test_renewing_someone_elses_lease_fails(store: DocumentStore) -> None:
    mine = store.acquire_lease("locks/a", 15)
    assert mine is not None
    assert store.renew_lease("locks/a", str(uuid.uuid4())) is False


def test_expired_lease_can_be_taken_and_the_old_holder_cannot_renew(
    store_and_expire: tuple[DocumentStore, Callable[[float], None]],
) -> None:
    store, let_pass = store_and_expire
    old = store.acquire_lease("locks/a", 15)
    assert old is not None
    let_pass(16)
    new = store.acquire_lease("locks/a", 15)
    assert new is not None
    assert store.renew_lease("locks/a", old) is False
