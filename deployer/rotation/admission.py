"""Which request rotates a module: ownership as state, not as a lease held across waits.

The module's document names its ``owner`` (at most one: writes are etag-guarded and made under
the module's step lock). Every submitted request is listed as pending (``state.pending``) until
it finishes or cuts over. A request that finds its module owned by another waits and looks again
later; the owner wakes the pending requests when it lets go. The newest intent wins: a request
older than a pending one, than the owner, or than the newest request that ever owned the module
is ``superseded`` instead of run (``models.Intent`` says what "older" means). A removal
(``deployer remove``) is an intent like the others: it becomes the module's newest, so a request
made before it (an upload whose event arrives late, say) is superseded by it and never brings the
module back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from deployer.models import Claim, ModuleState, RequestKind, RunRecord
from deployer.request_queue import message, new_token
from deployer.rotation.looks import NUDGE_AFTER_SECONDS
from deployer.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proceed:
    pass


@dataclass(frozen=True)
class MustWait:
    owner: Claim


@dataclass(frozen=True)
class Superseded:
    by: str
    removal: bool = False  # ``by`` is the module's removal


Verdict = Proceed | MustWait | Superseded


def admit(services: Services, record: RunRecord) -> Verdict:
    state, module, now = services.state, record.module, services.now()
    me = Claim(record.request_id, record.kind, record.intent_or_created, now)
    got = state.module(module)
    doc = got.value if got else ModuleState(module, updated_at=now)
    etag = got.etag if got else None
    owner = doc.owner
    if owner is not None and owner.request_id != me.request_id and not _live(services, module, owner):
        logger.warning("admission.stale_owner module=%s owner=%s", module, owner.request_id)
        owner = None
    rivals = [c for c in (*state.pending(module), owner, doc.newest)
              if c is not None and c.request_id != me.request_id and c.intent.newer_than(me.intent)]
    rivals = [c for c in rivals if c is doc.newest or _live(services, module, c)]
    if rivals:
        by = max(rivals, key=lambda c: (c.intent.at, c.intent.tiebreak))
        if owner is not doc.owner:
            _save(services, replace(doc, owner=owner), etag)
        return Superseded(by.request_id, removal=by.kind is RequestKind.REMOVE)
    if owner is None or owner.request_id == me.request_id:
        newest = doc.newest
        if newest is None or not newest.intent.newer_than(me.intent):
            newest = me
        _save(services, replace(doc, owner=owner or me, newest=newest), etag)
        return Proceed()
    if owner is not doc.owner:
        _save(services, replace(doc, owner=owner), etag)
    _nudge_if_stuck(services, module, owner)
    return MustWait(owner)


def release(services: Services, module: str, request_id: str) -> None:
    """Let go of the module if ``request_id`` owns it, and wake the requests waiting for it."""
    got = services.state.module(module)
    if got is None or got.value.owner is None or got.value.owner.request_id != request_id:
        return
    services.state.save_module(replace(got.value, owner=None, updated_at=services.now()), got.etag)
    wake(services, module, request_id)


def wake(services: Services, module: str, waker: str) -> int:
    """Give every pending request of the module a message now (a new token makes its delayed
    look stale), so the next one starts at once instead of at its next look. Returns how many."""
    woken = 0
    for claim in services.state.pending(module):
        if claim.request_id == waker:
            continue
        got = services.state.run(module, claim.request_id)
        if got is None or got.value.status.finished:
            services.state.remove_pending(module, claim.request_id)  # left over by a crash
            continue
        token = new_token()
        services.queue.send(message(services, module, claim.request_id, token))
        waiting = got.value.waiting
        services.state.save_run(replace(got.value, token=token, waiting=replace(
            waiting, next_look_at=services.now()) if waiting else None), got.etag)
        logger.info("admission.woke module=%s request=%s", module, claim.request_id)
        woken += 1
    return woken


def _live(services: Services, module: str, claim: Claim) -> bool:
    got = services.state.run(module, claim.request_id)
    live = got is not None and not got.value.status.finished
    if not live:
        services.state.remove_pending(module, claim.request_id)
    return live


def _nudge_if_stuck(services: Services, module: str, owner: Claim) -> None:
    """The owner's next look is long overdue: its message was lost (a platform fault). Send it
    again with the owner's own token; if the owner is fine after all, the copy is dropped."""
    got = services.state.run(module, owner.request_id)
    if got is None or got.value.waiting is None or got.value.waiting.next_look_at is None:
        return
    overdue = services.now() - got.value.waiting.next_look_at
    if overdue > timedelta(seconds=NUDGE_AFTER_SECONDS):
        logger.warning("admission.nudge module=%s owner=%s overdue=%ds", module, owner.request_id,
                       overdue.total_seconds())
        services.queue.send(message(services, module, owner.request_id, got.value.token))


def _save(services: Services, doc: ModuleState, etag: str | None) -> None:
    services.state.save_module(replace(doc, updated_at=services.now()), etag)
