"""``deployer approve`` and ``deployer reject``: deciding a request that waits for its
environment's approval (``DEPLOYER_APPROVAL``).

A request into an environment that requires an approval is recorded ``awaiting_approval`` and
nothing starts (``request_queue.approval_needed``); it waits as long as it takes. Approving it
records who and when and queues it, as any request; rejecting it ends it ``rejected`` with the
reason, in history too, and nothing changes in the environment. ``required-other`` refuses an
approval by the one who asked. A request that is not waiting (finished, or superseded by a newer
request of the same module, which is then the one to decide) cannot be decided: the error says why.
"""

from __future__ import annotations

from dataclasses import replace

from deployer import notices
from deployer.approval import Approval
from deployer.errors import NotFound, UsageError
from deployer.models import HistoryEntry, RequestStage, RunRecord, RunStatus
from deployer.ports.notifications import Notice
from deployer.request_queue import new_token, submit
from deployer.services import Services


def find(services: Services, prefix: str) -> RunRecord:
    """The request whose id starts with ``prefix`` (as git takes a commit's), any module."""
    found = [r for r in services.state.runs() if r.request_id.startswith(prefix.lower())]
    if not found:
        waiting = ", ".join(r.request_id[:8] for r in services.state.runs()
                            if r.status is RunStatus.AWAITING_APPROVAL) or "none"
        raise NotFound(f"no request {prefix!r} in environment {services.settings.environment_name}",
                       hint=f"requests awaiting approval there: {waiting}")
    if len(found) > 1:
        raise UsageError(f"request {prefix!r} is ambiguous: "
                         + ", ".join(r.request_id for r in found[:10]), hint="give more of it")
    return found[0]


def _decidable(services: Services, record: RunRecord, user: str, verb: str) -> RunRecord:
    if record.status is not RunStatus.AWAITING_APPROVAL:
        raise UsageError(f"request {record.request_id} of {record.module} is {record.status.value}: "
                         f"there is nothing to {verb}" + (
                             f" (superseded by {record.superseded_by})" if record.superseded_by else ""))
    newer = [r for r in services.state.runs(record.module) if r.request_id != record.request_id
             and r.intent_or_created.at > record.intent_or_created.at
             and (r.status is RunStatus.AWAITING_APPROVAL or not r.status.finished
                  or r.status in (RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK))]
    if newer:
        superseded = replace(record, status=RunStatus.SUPERSEDED, superseded_by=newer[-1].request_id,
                             updated_at=services.now())
        got = services.state.run(record.module, record.request_id)
        if got is not None:
            services.state.save_run(superseded, got.etag)
        raise UsageError(f"request {record.request_id} of {record.module} was superseded by a newer "
                         f"request, {newer[-1].request_id} ({newer[-1].status.value}): decide that one")
    asker = record.approval.requested_by if record.approval else ""
    if verb == "approve" and services.settings.approval == "required-other" and asker and user == asker:
        raise UsageError(f"environment {services.settings.environment_name} requires an approval by "
                         f"someone other than the requester ({asker})",
                         hint="ask another person to run `deployer approve`")
    return record


def approve(services: Services, prefix: str, user: str, comment: str = "") -> RunRecord:
    """Record the approval and queue the request (it then runs as any request). An approval
    recorded by a run that stopped before queueing it is queued now."""
    found = find(services, prefix)
    if found.status is RunStatus.QUEUED and found.approval is not None \
            and found.approval.decision == "approved" and found.stage(RequestStage.ENQUEUE) is None:
        return submit(services, found)
    record = _decidable(services, found, user, "approve")
    now = services.now()
    decided = replace(record, status=RunStatus.QUEUED, updated_at=now, token=new_token(),
                      approval=replace(record.approval or _asker(record), decision="approved",
                                       by=user, at=now, comment=comment))
    got = services.state.run(record.module, record.request_id)
    assert got is not None
    services.state.save_run(decided, got.etag)
    return submit(services, decided)  # approved: queued now, as any request


def reject(services: Services, prefix: str, user: str, reason: str) -> RunRecord:
    """End the request ``rejected`` (nothing changes in the environment), in history too."""
    if not reason.strip():
        raise UsageError("a rejection needs a reason (--reason '...'): it is recorded and told")
    record = _decidable(services, find(services, prefix), user, "reject")
    now = services.now()
    error = {"code": "rejected_by_approver", "message": f"rejected by {user or 'someone'}: {reason}"}
    ended = replace(record, status=RunStatus.REJECTED, updated_at=now, error=error,
                    approval=replace(record.approval or _asker(record), decision="rejected",
                                     by=user, at=now, comment=reason))
    got = services.state.run(record.module, record.request_id)
    assert got is not None
    services.state.save_run(ended, got.etag)
    if record.revision is not None:
        services.state.append_history(HistoryEntry(record.module, record.revision, record.request_id,
                                                   record.kind, record.trigger, RunStatus.REJECTED,
                                                   now, error=error))
    notices.tell(services, Notice("deploy.rejected", "warning", f"{record.module}: "
                                  f"{record.kind.value} into {services.settings.environment_name} "
                                  "rejected", f"request {record.request_id}: {error['message']}",
                                  record.module))
    return ended


def _asker(record: RunRecord) -> Approval:
    return Approval(requested_by=str(record.trigger.detail.get("user", "")))
