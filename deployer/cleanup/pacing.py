"""Pacing deletions under quotas: sliding windows (e.g. ACI's 100 deletes per 5 minutes and 300
per hour), shared by the executor's threads. ``acquire`` waits (with the injected sleep) for a
slot, or declines when the slot lies past the run's deadline: the rest is left for the next run.

The service counts a call when it accepts it, which can be later than the slot was taken (the SDK
may wait out a 429 first); ``settle`` moves the slot to when the call returned, so the windows are
measured from a time no earlier than the service's."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta


class Slot:
    __slots__ = ("at",)

    def __init__(self, at: datetime) -> None:
        self.at = at


class SlidingWindowLimiter:
    def __init__(self, windows: Iterable[tuple[int, int]], now: Callable[[], datetime],
                 sleep: Callable[[float], None], history: Iterable[datetime] = ()) -> None:
        self._windows = [(count, timedelta(seconds=seconds)) for count, seconds in windows]
        self._now = now
        self._sleep = sleep
        self._lock = threading.Lock()
        horizon = max((w for _, w in self._windows), default=timedelta(0))
        current = now()
        self.used: deque[Slot] = deque(Slot(t) for t in sorted(history) if current - t < horizon)

    def _wait(self, at: datetime) -> float:
        """Seconds until a slot is free at ``at``, given what was used."""
        wait = 0.0
        times = sorted(slot.at for slot in self.used)
        for count, window in self._windows:
            inside = [t for t in times if at - t < window]
            if len(inside) >= count:
                oldest_blocking = inside[len(inside) - count]
                wait = max(wait, (oldest_blocking + window - at).total_seconds())
        return wait

    def acquire(self, deadline: datetime) -> Slot | None:
        """A slot (settle it when the call returns), or None when none is free before ``deadline``."""
        with self._lock:
            horizon = max((w for _, w in self._windows), default=timedelta(0))
            while self.used and self._now() - min(s.at for s in self.used) >= horizon:
                self.used.remove(min(self.used, key=lambda s: s.at))
            wait = self._wait(self._now())
            if wait > 0:
                if self._now() + timedelta(seconds=wait) > deadline:
                    return None
                self._sleep(wait)
            slot = Slot(self._now())
            self.used.append(slot)
            return slot

    def settle(self, slot: Slot) -> None:
        with self._lock:
            slot.at = max(slot.at, self._now())

    def describe(self) -> str:
        return ", ".join(f"{count} per {int(window.total_seconds())} s" for count, window in self._windows)
