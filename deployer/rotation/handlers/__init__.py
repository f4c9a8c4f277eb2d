"""The operations' handlers, one per operation type (``registry.HANDLERS``), grouped by phase:
``prepare`` (nothing points at the new revision yet), ``cutover`` (re-pointing and commit),
``bake`` (watching the new revision's runs) and ``retire`` (old agents drain and stop).

Each handler takes one *look* at the outside world and either finishes its operation (``Done``
with its typed result) or says how long to wait before the next look (``Wait``). Each checks its
own precondition first, so a look repeated after a crash or a redelivery does no harm: a build
already started is polled, not started again; an agent that exists is not started twice;
re-registering is an upsert; a stopped agent stays stopped.

A new operation is a type in ``operations``, a result in ``results`` and a handler here.
"""

from __future__ import annotations

from deployer.rotation.context import Context
from deployer.rotation.handlers import bake, cutover, prepare, retire  # noqa: F401  (they register)
from deployer.rotation.handlers.registry import HANDLERS
from deployer.rotation.operations import Operation
from deployer.rotation.outcomes import Outcome

__all__ = ["HANDLERS", "look"]


def look(ctx: Context, op: Operation, looks: int) -> Outcome:
    return HANDLERS[type(op)](ctx, op, looks)
