"""Checkpointing a request's progress in its run record, stage by stage.

Every write is conditional on the record's etag and made only while the module's step lock is
still held: a step that lost its lock (paused past the lease) stops instead of overwriting the
progress of the one that took over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from deployer.models import RunRecord, RunStatus, Stage, StageStatus
from deployer.state import ModuleLock, StateRepository

logger = logging.getLogger(__name__)


class Progress(Protocol):
    """What a person (CLI) or the log (triggers) sees while a request runs."""

    def stage(self, name: str, status: StageStatus, seconds: float | None,
              detail: dict[str, Any]) -> None: ...

    def note(self, message: str) -> None: ...


class LogProgress:
    def stage(self, name: str, status: StageStatus, seconds: float | None,
              detail: dict[str, Any]) -> None:
        logger.info("pipeline.stage name=%s status=%s seconds=%s", name, status.value,
                    f"{seconds:.2f}" if seconds is not None else "-")

    def note(self, message: str) -> None:
        logger.info("pipeline.note %s", message)


class RunTracker:
    def __init__(self, state: StateRepository, record: RunRecord, etag: str,
                 lock: ModuleLock | None, progress: Progress,
                 now: Callable[[], datetime]) -> None:
        self._state = state
        self._now = now
        self.record = record
        self._etag = etag
        self._lock = lock
        self.progress = progress

    def save(self, record: RunRecord) -> RunRecord:
        if self._lock is not None:
            self._lock.check()
        self._etag = self._state.save_run(replace(record, updated_at=self._now()), self._etag)
        self.record = record
        return record

    def update(self, **changes: Any) -> RunRecord:
        return self.save(replace(self.record, **changes))

    def done(self, name: str) -> dict[str, Any] | None:
        """The detail of a stage finished by this or an earlier step, else None."""
        stage = self.record.stage(name)
        if stage is not None and stage.status in (StageStatus.DONE, StageStatus.SKIPPED):
            return dict(stage.detail)
        return None

    def begun(self, name: str) -> dict[str, Any]:
        """The detail an earlier look checkpointed inside a stage (empty if none)."""
        stage = self.record.stage(name)
        return dict(stage.detail) if stage is not None else {}

    def start(self, name: str, detail: dict[str, Any] | None = None) -> None:
        previous = self.record.stage(name)
        if previous is not None and previous.status is StageStatus.RUNNING and not detail:
            return
        started = previous.started_at if previous is not None else self._now()
        merged = {**(previous.detail if previous else {}), **(detail or {})}
        self.save(self.record.with_stage(Stage(name, StageStatus.RUNNING, started, None, merged)))
        self.progress.stage(name, StageStatus.RUNNING, None, merged)

    def checkpoint(self, name: str, detail: dict[str, Any],
                   changes: dict[str, Any] | None = None) -> None:
        """Merge ``detail`` into the stage's; ``changes``: fields of the record to set too."""
        stage = self.record.stage(name)
        assert stage is not None, f"checkpoint outside stage {name}"
        record = self.record.with_stage(replace(stage, detail={**stage.detail, **detail}))
        self.save(replace(record, **(changes or {})))

    def finish(self, name: str, detail: dict[str, Any] | None = None,
               status: StageStatus = StageStatus.DONE,
               changes: dict[str, Any] | None = None) -> dict[str, Any]:
        stage = self.record.stage(name)
        started = stage.started_at if stage is not None else self._now()
        merged = {**(stage.detail if stage else {}), **(detail or {})}
        merged.pop("looks", None)
        finished = Stage(name, status, started, self._now(), merged)
        self.save(replace(self.record.with_stage(finished), **(changes or {})))
        self.progress.stage(name, status, finished.seconds, merged)
        return merged

    def end(self, status: RunStatus, error: dict[str, Any] | None = None,
            **changes: Any) -> RunRecord:
        return self.save(replace(self.record, status=status, error=error, waiting=None, **changes))
