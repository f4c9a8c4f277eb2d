"""What one look at an operation comes to: done (with its typed result), or wait and look again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployer.rotation.operations import Operation
from deployer.rotation.results import Result


@dataclass(frozen=True)
class Done:
    result: Result
    skipped: bool = False
    #: the operations that follow from here instead of the planned ones (a rollback)
    replan: tuple[Operation, ...] | None = None


@dataclass(frozen=True)
class Wait:
    pause: float
    what: str
    #: what the look found so far, checkpointed in the stage (runs in flight, say)
    detail: dict[str, Any] = field(default_factory=dict)
    #: False: the pause is not slept inside the invocation even when short (a wait whose length
    #: is known and mostly someone else's: billed time for nothing)
    inline: bool = True


Outcome = Done | Wait
