"""A notifier with state: every notice it was given, and whether sending "worked"."""

from __future__ import annotations

from typing import Any

from deployer.ports.notifications import Notice, Sent


class Recorder:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.notices: list[Notice] = []

    def send(self, notice: Notice) -> Sent:
        self.notices.append(notice)
        return Sent(self.ok, "sent to 1 target(s)" if self.ok else "timed out after 5 s")


def notify_into(world: Any, recorder: Recorder) -> Recorder:
    """Put ``recorder`` in place of the world's notifier."""
    world.services.__dict__["notifier"] = recorder
    return recorder
