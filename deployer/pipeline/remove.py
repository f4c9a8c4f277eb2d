"""``deployer remove MODULE``: take a module out of service on either backend. Its agents are
stopped, its Prefect deployments and work queues removed; its history, bundles and images stay
until cleanup's rules say otherwise (a later deploy or rollback of it still works).

A removal is an intent like a deploy's: it becomes the module's newest claim, so a request made
before it (an upload whose blob event arrives hours later, one queued but not yet started) ends
``superseded`` by it instead of bringing the module back; one made after it deploys the module
anew. A revision in its bake window ends the window as ``removed``. History records the removal.

Refused, with nothing changed, while a request rotates the module (it owns it: wait for it), and
while flow runs are in flight on its agents (stopping an agent ends them), unless ``force``, which
marks those runs crashed the way a killed process would leave them. Taken under the module's step
lock (waiting for a step that holds it to end), the state document saved etag-guarded, so that no
step of a request interleaves with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from deployer import notices
from deployer.cleanup.plan import DEFAULT_QUEUE
from deployer.errors import DeployerError, LockBusy
from deployer.models import (
    Claim,
    HistoryEntry,
    Intent,
    ModuleState,
    Removed,
    Request,
    RequestKind,
    RunStatus,
    Trigger,
)
from deployer.names import unknown_module
from deployer.ports.agents import Role
from deployer.ports.notifications import Notice
from deployer.services import Services

logger = logging.getLogger(__name__)


class RemoveRefused(DeployerError):
    code = "remove_refused"


@dataclass(frozen=True)
class Removal:
    module: str
    dry_run: bool
    agents: tuple[str, ...]
    deployments: tuple[str, ...]
    queues: tuple[str, ...]
    crashed: tuple[str, ...] = ()
    kept: str = "history, bundles, images and run records (cleanup's rules apply to them)"
    request_id: str = ""  # the removal's own id, in history and in what it supersedes


#: a step holds its module's lock for one slice plus its own work; the CLI waits that long
LOCK_WAIT_MARGIN_SECONDS = 30


def remove_module(services: Services, module: str, *, dry_run: bool = False,
                  force: bool = False, user: str = "") -> Removal:
    state = services.state
    got = state.module(module)
    if got is None and not state.history(module):
        raise unknown_module(services, module)
    if dry_run:
        return _plan(services, module, force=force, dry_run=True)
    wait = services.settings.step_slice_seconds + LOCK_WAIT_MARGIN_SECONDS
    try:
        with state.lock(module, wait_seconds=wait):
            return _remove(services, module, force=force, user=user)
    except LockBusy as exc:
        raise RemoveRefused(f"a step of a request held module {module} for more than {wait}s, "
                            "so it was not removed (nothing changed)",
                            hint=f"run `deployer remove {module}` again; `deployer status "
                            f"{module}` shows what works on it") from exc


def _remove(services: Services, module: str, *, force: bool, user: str) -> Removal:
    state = services.state
    got = state.module(module)
    if got is not None and got.value.owner is not None:
        raise RemoveRefused(f"module {module} is being deployed by request "
                            f"{got.value.owner.request_id} (nothing changed)",
                            hint=f"wait until `deployer status {module}` shows it cut over or "
                            "ended, then remove again; or let it finish")
    plan = _plan(services, module, force=force, dry_run=False)
    orchestrator = services.orchestrator
    crashed: tuple[str, ...] = ()
    if plan.crashed:
        crashed = tuple(orchestrator.mark_crashed(list(plan.crashed), f"module {module} was "
                                                  "removed (deployer remove --force)"))
    removed = orchestrator.register(module, DEFAULT_QUEUE, [], [], "")  # none left
    for name in plan.agents:
        services.runtime.stop(name)
    for queue in plan.queues:
        orchestrator.delete_queue(module, queue)
    now = services.now()
    request_id = Request.make_id("remove", module, now.isoformat())
    doc = got.value if got is not None else ModuleState(module, updated_at=now)
    served = doc.current or next((e.revision for e in reversed(state.history(module))), None)
    claim = Claim(request_id, RequestKind.REMOVE, Intent(now, f"remove:{request_id}"), now)
    state.save_module(replace(
        doc, current=None, agent=None, request_id="", draining=(), baking=None, newest=claim,
        removed=Removed(request_id, now, doc.current.id if doc.current else "", user),
        updated_at=now), got.etag if got is not None else None)
    if served is not None:
        _record(services, module, request_id, served, user)
    logger.info("remove.done module=%s agents=%d deployments=%d queues=%d", module,
                len(plan.agents), len(removed), len(plan.queues))
    return replace(plan, crashed=crashed, request_id=request_id)


def _record(services: Services, module: str, request_id: str, served: Any, user: str) -> None:
    """The removal in the module's history, and told to whoever listens."""
    now = services.now()
    trigger = Trigger("cli", f"remove {module}", {"user": user} if user else {})
    services.state.append_history(HistoryEntry(module, served, request_id, RequestKind.REMOVE,
                                               trigger, RunStatus.REMOVED, now))
    notices.tell(services, Notice(
        "module.removed", "warning", f"{module}: removed",
        f"module {module} was removed (request {request_id}"
        f"{', by ' + user if user else ''}); it served revision {served.id} until then\n"
        + "\n".join(notices.links(services).lines(module)), module))


def _plan(services: Services, module: str, *, force: bool, dry_run: bool) -> Removal:
    orchestrator = services.orchestrator
    # its agents, and the containers of its runs (``isolation: run``): stopped alike
    agents = tuple(sorted(a.name for role in (Role.AGENT, Role.RUN)
                          for a in services.runtime.list(module, detailed=False, role=role)))
    queues = orchestrator.queues(module)
    in_flight = [run for queue in queues for run in orchestrator.in_flight(module, queue)]
    if in_flight and not force and not dry_run:
        names = ", ".join(f"{r.name} ({r.id})" for r in in_flight[:5])
        raise RemoveRefused(f"{len(in_flight)} flow run(s) of {module} are in flight: {names}; "
                            "stopping its agents would end them",
                            hint="wait for them, or pass --force to stop them (marked crashed)")
    return Removal(module, dry_run, agents, tuple(sorted(orchestrator.versions(module))),
                   tuple(sorted(q for q in queues if q != DEFAULT_QUEUE)),
                   crashed=tuple(r.id for r in in_flight) if force or dry_run else ())
