"""The cleanup use case (nightly timer and ``deployer cleanup``): list, plan, carry out, report.

A cleanup that overlaps another is refused by a lease on ``locks/_cleanup``. ``dry_run`` returns
the plan as a report and changes nothing (it writes no report either).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from deployer import codec, notices
from deployer.cleanup.execute import Executor
from deployer.cleanup.pacing import SlidingWindowLimiter
from deployer.cleanup.plan import Action, Inventory, Policy, plan_cleanup
from deployer.errors import LockBusy, UpstreamError
from deployer.models import CleanupItem, CleanupReport
from deployer.ports.agents import Role
from deployer.services import Services

logger = logging.getLogger(__name__)
LOCK = "_cleanup"
REPORTS = "cleanup/"
#: a superseded agent that is not draining (state lists those) goes after this: a deploy that is
#: just retiring it may still be on its way
RETIRE_GRACE = timedelta(minutes=10)


def policy_from(services: Services) -> Policy:
    s = services.settings
    return Policy(keep_revisions=s.keep_revisions, rollback_window=timedelta(days=s.rollback_window_days),
                  retention=timedelta(days=s.retention_days), keep_records=s.keep_records,
                  orphan_grace=timedelta(hours=s.orphan_grace_hours),
                  drain_grace=RETIRE_GRACE)


#: the nightly timer's invocation ends at host.json's functionTimeout (300 s, a test ties them):
#: its cleanup stops this long into it, leaving a minute for the report, the notice and the
#: rotated-secret check, whatever DEPLOYER_CLEANUP_BUDGET_SECONDS says (that is for the CLI)
TIMER_BUDGET_SECONDS = 240


def timer_budget(services: Services) -> int:
    return min(services.settings.cleanup_budget_seconds, TIMER_BUDGET_SECONDS)


def run_cleanup(services: Services, *, dry_run: bool = False,
                on_item: Callable[[CleanupItem], None] | None = None,
                budget_seconds: int | None = None) -> CleanupReport:
    """``budget_seconds``: when to stop (what is left is deferred to the next run); default
    ``DEPLOYER_CLEANUP_BUDGET_SECONDS``."""
    started = services.now()
    report_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    if dry_run:  # reads only: no lease is taken, nothing is written
        actions = plan(services, probe_locks=False)
        items = tuple(CleanupItem(a.kind, a.module, a.target, "planned" if a.delete else
                                  "anomaly" if a.kind == "anomaly" else "kept",
                                  a.reason) for a in actions)
        return CleanupReport(report_id, started, services.now(), True, items)
    try:
        with services.state.lock(LOCK, wait_seconds=0):
            return _clean(services, report_id, started, on_item,
                          services.settings.cleanup_budget_seconds if budget_seconds is None
                          else budget_seconds)
    except LockBusy as exc:
        if exc.message.startswith(f"module {LOCK} "):
            raise LockBusy("another cleanup is running", hint="it reports when it is done; "
                           "`deployer status` shows the last report") from exc
        raise


def _clean(services: Services, report_id: str, started: datetime,
           on_item: Callable[[CleanupItem], None] | None, budget_seconds: int) -> CleanupReport:
    actions = plan(services)
    limiter = SlidingWindowLimiter(services.settings.aci_delete_quota, services.now, services.sleep,
                                   history=_recent_deletions(services))
    deadline = started + timedelta(seconds=budget_seconds)
    executor = Executor(services, limiter, deadline, services.settings.cleanup_concurrency, on_item)
    items = tuple(executor.run(actions))
    report = CleanupReport(report_id, started, services.now(), False, items,
                           tuple(sorted(executor.agent_deletions)))
    told = notices.tell(services, notices.cleanup_notice(report, notices.links(services)))
    if told is not None:
        report = replace(report, notices=(told,))
    services.state.docs.create(f"{REPORTS}{report_id}.json", codec.dumps(report))
    logger.info("cleanup.done deleted=%d kept=%d deferred=%d failed=%d", report.count("deleted"),
                report.count("kept"), report.count("deferred"), report.count("failed"))
    return report


#: what environments share (images, code, bundles): deleted only if no environment keeps it
SHARED_KINDS = ("manifest", "tag", "code", "bundle")


def plan(services: Services, *, probe_locks: bool = True) -> list[Action]:
    """The environment's plan; what it would delete of what environments share is kept when
    another environment keeps it (its images, code and bundles serve, bake or can roll back)."""
    actions = plan_cleanup(take_inventory(services, probe_locks=probe_locks), policy_from(services))
    others = [e for e in services.settings.environments if e != services.settings.environment]
    if not others or not any(a.delete and a.kind in SHARED_KINDS for a in actions):
        return actions
    kept: dict[tuple[str, str, str], str] = {}
    for name in others:
        sibling = services.in_environment(name)
        for a in plan_cleanup(take_inventory(sibling, probe_locks=False), policy_from(sibling)):
            if a.kind in SHARED_KINDS and not a.delete:
                kept.setdefault((a.kind, a.module, a.target), f"environment {name}: {a.reason}")
    return [replace(a, delete=False, reason=kept[(a.kind, a.module, a.target)])
            if a.delete and (a.kind, a.module, a.target) in kept else a for a in actions]


def take_inventory(services: Services, *, probe_locks: bool = True) -> Inventory:
    """A module is busy when a request owns it (state says so), or, with ``probe_locks`` (a
    write, so not in dry runs), when one of its steps holds the step lock right now."""
    state = services.state
    modules = {m.module: m for m in state.modules()}
    agents = services.runtime.list(detailed=False)
    # flow runs' and checks' containers (``isolation: run``): read one by one, to see which ended
    agents += [c for role in (Role.RUN, Role.CHECK) for c in services.runtime.list(role=role)]
    image_modules = set(services.builder.image_modules())
    runs = state.runs()
    owned = {m for m, doc in modules.items() if doc.owner is not None}
    busy = frozenset(owned | ({m for m in modules if _locked(services, m)} if probe_locks else set()))
    queues: dict[str, dict[str, int]] = {}
    deployed: dict[str, dict[str, str]] = {}
    for module in modules:
        try:
            queues[module] = services.orchestrator.queues(module)
            deployed[module] = services.orchestrator.versions(module)
        except UpstreamError as exc:  # Prefect down: leave queues and code for the next run
            logger.warning("cleanup.prefect_unavailable module=%s error=%s", module, exc.message)
    return Inventory(
        now=services.now(), modules=modules,
        history={m: state.history(m) for m in modules}, busy=busy, agents=agents,
        manifests={m: services.builder.manifests(m) for m in sorted(image_modules)},
        bundles=services.bundles.list(), runs=runs, queues=queues,
        reports=[(key, _report_time(key, services.now())) for key in state.docs.list(REPORTS)],
        codes={m: services.code.codes(m) for m in modules}, deployed=deployed,
        damaged={m: tuple(problems) for m, doc in modules.items()
                 if doc.current is not None and doc.current.code_store
                 and (problems := services.code.verify(m, doc.current.code_digest))})


def last_report(services: Services) -> CleanupReport | None:
    keys = services.state.docs.list(REPORTS)
    if not keys:
        return None
    doc = services.state.docs.get(keys[-1])
    return codec.loads(CleanupReport, doc.body, where=keys[-1]) if doc else None


def _recent_deletions(services: Services) -> list[datetime]:
    report = last_report(services)
    return list(report.agent_deletions) if report else []


def _locked(services: Services, module: str) -> bool:
    try:
        with services.state.lock(module, wait_seconds=0):
            return False
    except LockBusy:
        return True


def _report_time(key: str, now: datetime) -> datetime:
    """When a report was made, from its key; a key that says nothing counts as new (kept)."""
    stamp = key[len(REPORTS):].split("-", 1)[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return now
