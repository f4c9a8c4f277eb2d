"""Carrying out a cleanup plan: bounded concurrency, agent deletions paced under the delete
quota, every outcome recorded, nothing retried twice (the SDK already honours Retry-After). What
the budget or the quota leaves undone is ``deferred``: the next run plans it again.

A module that a request started rotating after the inventory is left alone (its agents and
images are deferred). The cleanup never holds a module's step lock for longer than a look: a
rotation's steps would otherwise queue up behind a cleanup that may run for minutes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from deployer.cleanup.pacing import SlidingWindowLimiter
from deployer.cleanup.plan import Action
from deployer.errors import DeployerError, LockBusy
from deployer.models import CleanupItem
from deployer.services import Services

logger = logging.getLogger(__name__)
#: agents go first (they cost money), queues after their agents, reports last
ORDER = ("agent", "container", "manifest", "tag", "code", "bundle", "record", "queue", "report")
LOCKED_KINDS = ("agent", "manifest", "tag", "code")  # what a rotation of the module uses
PACED_KINDS = ("agent", "container")  # deleted through the runtime's delete quota


class Executor:
    def __init__(self, services: Services, limiter: SlidingWindowLimiter, deadline: datetime,
                 concurrency: int, on_item: Callable[[CleanupItem], None] | None = None) -> None:
        self.s = services
        self.limiter = limiter
        self.deadline = deadline
        self.concurrency = concurrency
        self.on_item = on_item or (lambda item: None)
        self.agent_deletions: list[datetime] = []

    def run(self, actions: list[Action]) -> list[CleanupItem]:
        items = [_item(a, "anomaly" if a.kind == "anomaly" else "kept") for a in actions if not a.delete]
        deletes = sorted((a for a in actions if a.delete), key=lambda a: ORDER.index(a.kind))
        busy = self._busy({a.module for a in deletes if a.kind in LOCKED_KINDS})
        runnable = []
        for action in deletes:
            if action.kind in LOCKED_KINDS and action.module in busy:
                items.append(_item(action, "deferred", "a deploy of the module started meanwhile"))
            else:
                runnable.append(action)
        for kind in ORDER:  # one kind at a time: queues only after their agents are gone
            batch = [a for a in runnable if a.kind == kind]
            if not batch:
                continue
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                items += list(pool.map(self._one, batch))
        return items

    def _busy(self, modules: set[str]) -> set[str]:
        """Modules a request owns now, or whose step lock is held at this moment."""
        busy = set()
        for module in sorted(modules):
            got = self.s.state.module(module)
            if got is not None and got.value.owner is not None:
                busy.add(module)
                continue
            try:
                with self.s.state.lock(module, wait_seconds=0):
                    pass
            except LockBusy:
                busy.add(module)
        return busy

    def _one(self, action: Action) -> CleanupItem:
        if self.s.now() >= self.deadline:
            return self._done(_item(action, "deferred", "the cleanup's time budget ran out"))
        paced = action.kind in PACED_KINDS
        slot = self.limiter.acquire(self.deadline) if paced else None
        if paced and slot is None:
            return self._done(_item(action, "deferred", f"the delete quota ({self.limiter.describe()}) "
                                    "is used up until after this run's budget"))
        try:
            self._delete(action)
        except DeployerError as exc:
            if slot is not None:
                self.limiter.settle(slot)  # a failed call may still have counted
            logger.warning("cleanup.failed kind=%s target=%s error=%s", action.kind, action.target,
                           exc.message)
            return self._done(_item(action, "failed", error=exc.message))
        if slot is not None:
            self.limiter.settle(slot)
            self.agent_deletions.append(slot.at)
        return self._done(_item(action, "deleted"))

    def _delete(self, action: Action) -> None:
        s = self.s
        if action.kind in PACED_KINDS:  # an agent, or a run's or a check's container
            s.runtime.stop(action.target)
        elif action.kind == "manifest":
            s.builder.delete_manifest(action.module, action.target)
        elif action.kind == "tag":
            s.builder.delete_tag(action.module, action.target)
        elif action.kind == "code":
            s.code.delete(action.module, action.target)
        elif action.kind == "bundle":
            s.bundles.delete(action.target)
        elif action.kind == "record":
            s.state.delete_run(action.module, action.target)
        elif action.kind == "queue":
            s.orchestrator.delete_queue(action.module, action.target)
        elif action.kind == "report":
            s.state.docs.delete(action.target)

    def _done(self, item: CleanupItem) -> CleanupItem:
        self.on_item(item)
        return item


def _item(action: Action, outcome: str, reason: str = "", error: str = "") -> CleanupItem:
    return CleanupItem(action.kind, action.module, action.target, outcome, reason or action.reason, error)
