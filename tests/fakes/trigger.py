"""The Functions host's queue trigger, simulated on a fake clock: messages are taken in the order
they become visible (the clock jumps to a delayed message's time), a function that raises sees
its message again after the retry delay, and after ``maxDequeueCount`` attempts it goes to the
poison list. Every invocation is recorded with its simulated start and end, for assertions and
for ``bench/serverless.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from deployer.rotation.dispatch import handle_message
from deployer.services import Services
from tests.fakes.platform import FakeQueue


@dataclass(frozen=True)
class Invocation:
    started: datetime
    ended: datetime
    failed: bool
    wall_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


@dataclass
class QueueTrigger:
    services: Services
    queue: FakeQueue
    advance_to: Callable[[datetime], None]  # moves the simulated clock forward
    retry_delay_seconds: float = 30.0  # host.json visibilityTimeout
    max_dequeue_count: int = 5
    invocations: list[Invocation] = field(default_factory=list)

    def pump(self, until: Callable[[], bool] = lambda: False, limit: int = 2000) -> int:
        """Run invocations until ``until()`` or the queue is empty; returns how many ran."""
        import time

        ran = 0
        while ran < limit and not until():
            message = self.queue.take()
            if message is None:
                break
            now = self.services.now()
            if message.visible_at > now:
                self.advance_to(message.visible_at)
            started, wall = self.services.now(), time.perf_counter()
            failed = False
            try:
                handle_message(self.services, message.body, message_id=message.id,
                               attempt=message.dequeue_count)
            except Exception:
                failed = True
                if message.dequeue_count >= self.max_dequeue_count:
                    self.queue.poison.append(message.body)
                else:
                    self.queue.put_back(message, self.retry_delay_seconds)
            self.invocations.append(Invocation(started, self.services.now(), failed,
                                               time.perf_counter() - wall))
            ran += 1
        return ran
