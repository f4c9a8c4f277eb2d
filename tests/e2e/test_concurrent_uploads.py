"""Many uploads of one module at once, through `deployer dev`, with one host and with two hosts on
the same Azurite: the newest upload ends current, older ones are superseded, nothing is lost."""

from __future__ import annotations

from datetime import datetime

import pytest

from deployer.models import RunRecord, RunStatus
from tests.e2e.harness import FLOW, Stack

pytestmark = pytest.mark.timeout(900)


#: two function app instances on one storage: the real leases and etags decide (one host is
#: tests/unit/test_admission.py::test_five_uploads_at_once_deploy_only_the_newest)
@pytest.mark.parametrize("hosts", [2])
def test_five_uploads_within_a_second_end_with_the_newest_current(stack: Stack, hosts: int) -> None:
    stack.start_host()
    for _ in range(hosts - 1):
        stack.start_host(another=True)
    first = stack.deploy()
    assert first.status is RunStatus.SUCCEEDED, (first.error, stack.host_log())
    uploads = [stack.upload({"flow.py": FLOW + f"\n# upload {n}\n"}) for n in range(5)]
    records = [stack.wait_request(u) for u in uploads]
    statuses = [r.status for r in records]
    assert set(statuses) <= {RunStatus.SUCCEEDED, RunStatus.SUPERSEDED}, statuses
    assert statuses[-1] is RunStatus.SUCCEEDED
    state = stack.services.state.module(stack.name).value  # type: ignore[union-attr]
    assert state.current.id == uploads[-1].revision.id  # type: ignore[union-attr]
    # one rotation per revision that was the newest pending upload when it was admitted
    pending_by = {r.request_id: _pending_by(r) for r in records}
    for index, record in enumerate(records):
        if record.status is RunStatus.SUCCEEDED:
            plan = record.stage("plan")
            assert plan is not None
            newer = [u.request_id for u in uploads[index + 1:]]
            admitted = datetime.fromisoformat(plan.detail["admitted_at"])  # before it read the list
            assert all(pending_by[n] > admitted for n in newer), (index, statuses)
        else:
            assert record.superseded_by in pending_by
    assert all(r.status.finished for r in stack.services.state.runs(stack.name))
    assert stack.poisoned() == []
    assert len(stack.running_agents()) == 1 and stack.running_agents() == [stack.current_agent()]


def _pending_by(record: RunRecord) -> datetime:
    """A time by which the request was listed as pending (so admission of an older one could
    see it): its record is created first, then listed, then its enqueue stage is written, unless
    a step picked it up before that, which it can only do once it is listed (the step's stages,
    or its last update, come after)."""
    enqueue = record.stage("enqueue")
    if enqueue is not None:
        return enqueue.started_at
    # a step took it first; superseded at once, it may have no stage of its own: its last update
    stages = [s.started_at for s in record.stages if s.name != "validate"]
    return min(stages, default=record.updated_at)
