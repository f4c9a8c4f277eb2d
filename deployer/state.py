"""The state repository: typed, versioned documents over a ``DocumentStore``, and module locks.

Layout (keys in the state container)::

    modules/<module>.json              ModuleState: the current revision and agent
    history/<module>.jsonl             HistoryEntry per line, append-only
    runs/<module>/<request_id>.json    RunRecord: stages, outcome, error
    pending/<module>/<request_id>.json Claim of a request not finished yet (the newest wins)
    locks/<module>                     empty blob; its lease is the module's step lock

Writes are create-only or etag-conditional: a lost race is ``StateConflict``, never a lost update.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from deployer import codec
from deployer.errors import LockBusy, NotFound, StateConflict
from deployer.models import Claim, HistoryEntry, ModuleState, RunRecord
from deployer.ports.storage import DocumentStore

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: first and longest pause between attempts to take a busy lock
LOCK_POLL_FIRST = 0.2
LOCK_POLL_MAX = 2.0


@dataclass(frozen=True)
class Versioned(Generic[T]):
    value: T
    etag: str


def module_key(module: str) -> str:
    return f"modules/{module}.json"


def history_key(module: str) -> str:
    return f"history/{module}.jsonl"


def run_key(module: str, request_id: str) -> str:
    return f"runs/{module}/{request_id}.json"


def lock_key(module: str) -> str:
    return f"locks/{module}"


def pending_key(module: str, request_id: str) -> str:
    return f"pending/{module}/{request_id}.json"


class StateRepository:
    def __init__(self, docs: DocumentStore, *, lease_seconds: int = 30,
                 lock_wait_seconds: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.docs = docs
        self.lease_seconds = lease_seconds
        self.lock_wait_seconds = lock_wait_seconds
        self._sleep = sleep
        self._clock = clock

    # -- modules --------------------------------------------------------------------------------

    def module(self, name: str) -> Versioned[ModuleState] | None:
        return self._get(ModuleState, module_key(name))

    def save_module(self, state: ModuleState, etag: str | None) -> str:
        return self._put(module_key(state.module), state, etag)

    def modules(self) -> list[ModuleState]:
        out = []
        for key in self.docs.list("modules/"):
            got = self._get(ModuleState, key)
            if got is not None:
                out.append(got.value)
        return sorted(out, key=lambda m: m.module)

    # -- history --------------------------------------------------------------------------------

    def append_history(self, entry: HistoryEntry) -> None:
        self.docs.append(history_key(entry.module), codec.dumps(entry) + b"\n")

    def history(self, module: str) -> list[HistoryEntry]:
        raw = self.docs.read_log(history_key(module))
        if raw is None:
            return []
        entries = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if line.strip():
                entries.append(codec.loads(HistoryEntry, line,
                                           where=f"{history_key(module)} line {number}"))
        return entries

    # -- run records ----------------------------------------------------------------------------

    def run(self, module: str, request_id: str) -> Versioned[RunRecord] | None:
        return self._get(RunRecord, run_key(module, request_id))

    def create_run(self, record: RunRecord) -> str:
        return self._put(run_key(record.module, record.request_id), record, None)

    def save_run(self, record: RunRecord, etag: str) -> str:
        return self._put(run_key(record.module, record.request_id), record, etag)

    def delete_run(self, module: str, request_id: str) -> None:
        self.docs.delete(run_key(module, request_id))

    def runs(self, module: str | None = None) -> list[RunRecord]:
        prefix = f"runs/{module}/" if module else "runs/"
        records = []
        for key in self.docs.list(prefix):
            got = self._get(RunRecord, key)
            if got is not None:
                records.append(got.value)
        return sorted(records, key=lambda r: r.created_at)

    def find_run(self, request_id: str) -> RunRecord:
        for key in self.docs.list("runs/"):
            if key.endswith(f"/{request_id}.json"):
                got = self._get(RunRecord, key)
                if got is not None:
                    return got.value
        raise NotFound(f"no run record for request {request_id}",
                       hint="`deployer status` lists the latest runs")

    # -- pending requests -------------------------------------------------------------------
    # every submitted request that has not finished is listed here, so that admission sees the
    # newer ones that have not taken a step yet (one listing, a few small reads)

    def add_pending(self, module: str, claim: Claim) -> None:
        try:
            self._put(pending_key(module, claim.request_id), claim, None)
        except StateConflict:
            pass  # listed already (a redelivered trigger)

    def pending(self, module: str) -> list[Claim]:
        out = []
        for key in self.docs.list(f"pending/{module}/"):
            got = self._get(Claim, key)
            if got is not None:
                out.append(got.value)
        return out

    def remove_pending(self, module: str, request_id: str) -> None:
        self.docs.delete(pending_key(module, request_id))

    # -- locks ----------------------------------------------------------------------------------

    def lock(self, module: str, *, wait_seconds: float | None = None) -> ModuleLock:
        return ModuleLock(self.docs, lock_key(module), module, self.lease_seconds,
                          self.lock_wait_seconds if wait_seconds is None else wait_seconds,
                          self._sleep, self._clock)

    # -- plumbing -------------------------------------------------------------------------------

    def _get(self, cls: type[T], key: str) -> Versioned[T] | None:
        doc = self.docs.get(key)
        if doc is None:
            return None
        return Versioned(codec.loads(cls, doc.body, where=key), doc.etag)

    def _put(self, key: str, value: object, etag: str | None) -> str:
        body = codec.dumps(value)
        return self.docs.create(key, body) if etag is None else self.docs.replace(key, body, etag)


class ModuleLock:
    """A module lock on a blob lease: bounded wait to acquire, renewed in the background while
    held, released on exit. A holder that crashes loses it when the lease expires."""

    def __init__(self, docs: DocumentStore, key: str, module: str, lease_seconds: int,
                 wait_seconds: float, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        self._docs = docs
        self._key = key
        self.module = module
        self._lease_seconds = lease_seconds
        self._wait_seconds = wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._lease_id: str | None = None
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._lease_id is not None and not self._lost.is_set()

    def check(self) -> None:
        """Raise if the lease was lost (a paused holder outlived it); call before committing."""
        if self._lost.is_set():
            raise StateConflict(f"lost the lock on module {self.module} (lease expired)",
                                hint="the request will be retried")

    def __enter__(self) -> ModuleLock:
        deadline = self._clock() + self._wait_seconds
        pause = LOCK_POLL_FIRST
        while True:
            self._lease_id = self._docs.acquire_lease(self._key, self._lease_seconds)
            if self._lease_id is not None:
                break
            if self._clock() >= deadline:
                raise LockBusy(
                    f"module {self.module} is locked by another request "
                    f"(waited {self._wait_seconds:g}s)",
                    hint="another deploy of this module is in progress; this request is retried "
                    "later (a crashed holder's lock frees within "
                    f"{self._lease_seconds}s)")
            self._sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MAX)
        logger.info("lock.acquired module=%s", self.module)
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.module}",
                                         daemon=True)
        self._renewer.start()
        return self

    def _renew(self) -> None:
        interval = self._lease_seconds / 3
        while not self._stop.wait(interval):
            lease_id = self._lease_id
            if lease_id is None:
                return
            try:
                renewed = self._docs.renew_lease(self._key, lease_id)
            except Exception:  # a transient failure: the next renewal may still succeed
                logger.warning("lock.renew_failed module=%s", self.module, exc_info=True)
                continue
            if not renewed:
                logger.error("lock.lost module=%s", self.module)
                self._lost.set()
                return

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        lease_id, self._lease_id = self._lease_id, None
        if lease_id is not None and not self._lost.is_set():
            try:
                self._docs.release_lease(self._key, lease_id)
            except Exception:  # the lease expires by itself; never mask the real error
                logger.warning("lock.release_failed module=%s", self.module, exc_info=True)
        logger.info("lock.released module=%s", self.module)

