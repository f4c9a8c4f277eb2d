from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from deployer import codec
from deployer.errors import LockBusy, StateConflict, StateCorrupt
from deployer.models import (
    AgentRef,
    HistoryEntry,
    ModuleState,
    RequestKind,
    Revision,
    RunRecord,
    RunStatus,
    Stage,
    StageStatus,
    Trigger,
)
from deployer.state import StateRepository, module_key
from tests.fakes.documents import MemoryDocumentStore

NOW = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
REV = Revision("finance", "sha256:" + "a" * 64, "hmac-sha256:" + "b" * 64, image="img", bundle="finance/x.tar.gz")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def repo(docs: MemoryDocumentStore | None = None, time: FakeTime | None = None) -> StateRepository:
    t = time or FakeTime()
    return StateRepository(docs or MemoryDocumentStore(clock=t.clock), lease_seconds=15,
                           lock_wait_seconds=5, sleep=t.sleep, clock=t.clock)


def record(status: RunStatus = RunStatus.QUEUED, request_id: str = "r1") -> RunRecord:
    return RunRecord(request_id=request_id, kind=RequestKind.DEPLOY, module="finance",
                     trigger=Trigger("blob", "finance/x.tar.gz@1"), status=status,
                     created_at=NOW, updated_at=NOW, revision=REV)


def test_module_state_round_trips_with_its_revision_and_agent() -> None:
    r = repo()
    state = ModuleState("finance", current=REV, agent=AgentRef("a1", REV.id, "q", NOW), updated_at=NOW)
    etag = r.save_module(state, None)
    got = r.module("finance")
    assert got is not None and got.value == state and got.etag == etag
    assert r.modules() == [state]


def test_documents_carry_schema_version_and_kind() -> None:
    r = repo()
    r.save_module(ModuleState("finance", updated_at=NOW), None)
    doc = json.loads(r.docs.get(module_key("finance")).body)  # type: ignore[union-attr]
    assert doc["schema_version"] == codec.SCHEMA_VERSION and doc["document"] == "module_state"


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d.update(schema_version=99), "schema_version 99"),
    (lambda d: d.pop("schema_version"), "schema_version None"),
    (lambda d: d.update(document="run_record"), "expected 'module_state'"),
    (lambda d: d.pop("module"), "ModuleState.module is missing"),
    (lambda d: d.update(updated_at="yesterday"), "module_state schema"),
    (lambda d: d.update(current={"module": 3}), "module_state schema"),
])
def test_documents_that_fail_validation_are_state_corrupt(mutate, expected: str) -> None:
    r = repo()
    r.save_module(ModuleState("finance", current=REV, updated_at=NOW), None)
    doc = json.loads(r.docs.get(module_key("finance")).body)  # type: ignore[union-attr]
    mutate(doc)
    r.docs.delete(module_key("finance"))
    r.docs.create(module_key("finance"), json.dumps(doc).encode())
    with pytest.raises(StateCorrupt) as info:
        r.module("finance")
    assert expected in str(info.value) and "modules/finance.json" in str(info.value)


def test_stale_module_write_conflicts_and_keeps_the_winner() -> None:
    r = repo()
    etag = r.save_module(ModuleState("finance", updated_at=NOW), None)
    r.save_module(ModuleState("finance", current=REV, updated_at=NOW), etag)
    with pytest.raises(StateConflict):
        r.save_module(ModuleState("finance", updated_at=NOW), etag)
    assert r.module("finance").value.current == REV  # type: ignore[union-attr]


def test_concurrent_read_modify_write_loses_no_update() -> None:
    """Writers that retry on StateConflict: every increment lands exactly once."""
    r = repo()
    r.save_module(ModuleState("finance", request_id="0", updated_at=NOW), None)

    def bump() -> None:
        for _ in range(25):
            while True:
                got = r.module("finance")
                assert got is not None
                n = int(got.value.request_id) + 1
                try:
                    r.save_module(ModuleState("finance", request_id=str(n), updated_at=NOW), got.etag)
                    break
                except StateConflict:
                    continue

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.module("finance").value.request_id == "100"  # type: ignore[union-attr]


def test_run_records_are_create_only_then_etag_guarded() -> None:
    r = repo()
    etag = r.create_run(record())
    with pytest.raises(StateConflict):
        r.create_run(record())
    updated = record(RunStatus.RUNNING).with_stage(Stage("build", StageStatus.DONE, NOW, NOW, {"image": "x"}))
    r.save_run(updated, etag)
    got = r.run("finance", "r1")
    assert got is not None and got.value.status is RunStatus.RUNNING
    assert got.value.stage("build").detail == {"image": "x"}  # type: ignore[union-attr]
    with pytest.raises(StateConflict):
        r.save_run(record(RunStatus.FAILED), etag)


def test_runs_are_listed_oldest_first_and_found_by_id() -> None:
    r = repo()
    later = RunRecord(**{**record(request_id="r2").__dict__, "created_at": NOW.replace(hour=6)})
    r.create_run(later)
    r.create_run(record())
    assert [x.request_id for x in r.runs("finance")] == ["r1", "r2"]
    assert r.find_run("r2").request_id == "r2"


def test_history_is_append_only_and_read_in_order() -> None:
    r = repo()
    for n in range(3):
        r.append_history(HistoryEntry("finance", REV, f"r{n}", RequestKind.DEPLOY,
                                      Trigger("cli", "x"), RunStatus.SUCCEEDED, NOW, {"build": 1.5}))
    entries = r.history("finance")
    assert [e.request_id for e in entries] == ["r0", "r1", "r2"]
    assert entries[0].stages == {"build": 1.5}
    assert r.history("nothing") == []


def test_a_busy_lock_is_waited_for_then_refused_with_a_clear_error() -> None:
    t = FakeTime()
    docs = MemoryDocumentStore(clock=t.clock)
    holder = repo(docs, t)
    waiter = repo(docs, t)
    with holder.lock("finance"), pytest.raises(LockBusy) as info, waiter.lock("finance"):
        pass
    assert "module finance is locked" in str(info.value)
    assert 4.9 <= sum(t.slept) <= 7.5  # bounded: about the configured wait, with backoff


def test_a_lock_is_free_again_after_release() -> None:
    r = repo()
    with r.lock("finance") as lock:
        assert lock.held
    with r.lock("finance") as again:
        assert again.held


def test_a_lock_left_by_a_dead_holder_frees_when_its_lease_expires() -> None:
    t = FakeTime()
    docs = MemoryDocumentStore(clock=t.clock)
    assert docs.acquire_lease("locks/finance", 15) is not None  # the holder then dies
    r = StateRepository(docs, lease_seconds=15, lock_wait_seconds=30, sleep=t.sleep, clock=t.clock)
    with r.lock("finance") as lock:
        assert lock.held
    assert 15 <= t.now <= 20
