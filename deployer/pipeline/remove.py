"""``deployer remove MODULE``: take a module out of service on either backend. Its agents are
stopped, its Prefect deployments and work queues removed; its history, bundles and images stay
until cleanup's rules say otherwise (a later deploy or rollback of it still works).

Refused, with nothing changed, while a deploy of the module is in progress, and while flow runs
are in flight on its agents (stopping an agent ends them), unless ``force``, which marks those
runs crashed the way a killed process would leave them. Taken under the module's step lock, and
the state document saved etag-guarded, so that no step of a request interleaves with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from deployer.cleanup.plan import DEFAULT_QUEUE
from deployer.errors import DeployerError, NotFound
from deployer.ports import Services

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


def remove_module(services: Services, module: str, *, dry_run: bool = False,
                  force: bool = False) -> Removal:
    state = services.state
    got = state.module(module)
    if got is None and not state.history(module):
        raise NotFound(f"no module {module!r} in the deployer's state",
                       hint="`deployer status` lists the modules")
    if dry_run:
        return _plan(services, module, force=force, dry_run=True)
    with state.lock(module):
        got = state.module(module)
        if got is not None and got.value.owner is not None:
            raise RemoveRefused(f"module {module} is being deployed by request "
                                f"{got.value.owner.request_id}",
                                hint=f"wait for it (`deployer status {module}`), then remove")
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
        if got is not None:
            state.save_module(replace(got.value, current=None, agent=None, draining=(), baking=None,
                                      updated_at=services.now()), got.etag)
        logger.info("remove.done module=%s agents=%d deployments=%d queues=%d", module,
                    len(plan.agents), len(removed), len(plan.queues))
        return replace(plan, crashed=crashed)


def _plan(services: Services, module: str, *, force: bool, dry_run: bool) -> Removal:
    orchestrator = services.orchestrator
    agents = tuple(sorted(a.name for a in services.runtime.list(module, detailed=False)))
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
