"""The table the engine dispatches on: operation type -> the one handler that looks at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from deployer.rotation.context import Context
from deployer.rotation.operations import Operation
from deployer.rotation.outcomes import Outcome

#: a handler takes one look: (context, its operation, looks taken so far) -> Done or Wait
Handler = Callable[[Context, Any, int], Outcome]
HANDLERS: dict[type[Operation], Handler] = {}
F = TypeVar("F", bound=Handler)


def handles(kind: type[Operation]) -> Callable[[F], F]:
    def register(handler: F) -> F:
        if kind in HANDLERS:
            raise TypeError(f"{kind.__name__} has a handler already: {HANDLERS[kind].__name__}")
        HANDLERS[kind] = handler
        return handler

    return register
