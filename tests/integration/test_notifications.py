"""Notifications through apprise to a loopback HTTP receiver: what they say, that they say no
secret, and that a receiver that refuses, hangs or fails never fails or holds up the caller."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from deployer.adapters.apprise_notifier import AppriseNotifier
from deployer.models import RequestKind, Revision, RunRecord, RunStatus, Trigger
from deployer.notices import Links, outcome_notice, unauthorised_notice
from deployer.ports.notifications import Notice
from tests.fakes.receiver import Receiver, receiver

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as got:
        yield got


def failed_record() -> RunRecord:
    revision = Revision("finance", "sha256:" + "1" * 64, "hmac-sha256:" + "2" * 64, bundle="finance/0001.tar.gz")
    return RunRecord("req-1", RequestKind.DEPLOY, "finance", Trigger("blob", "finance/0001.tar.gz@e1",
                     {"blob": "finance/0001.tar.gz"}), RunStatus.FAILED, NOW - timedelta(seconds=95),
                     NOW, revision=revision)


def test_a_failed_deploy_is_told_with_module_revision_trigger_duration_and_links(hook: Receiver) -> None:
    record = failed_record()
    error = {"code": "bundle_invalid", "message": "revision x of finance is invalid", "hint": "fix flow.py",
             "problems": [{"file": "flow.py", "line": 3, "message": "ModuleNotFoundError: No module named 'pandas'"}]}
    notice = outcome_notice(record, RunStatus.FAILED, error, NOW,
                            Links("http://127.0.0.1:4200/api", "https://app.example.net"))
    assert notice is not None
    sent = AppriseNotifier(hook.url, timeout=5).send(notice)
    assert sent is not None and sent.ok, sent
    [message] = hook.messages
    assert message["type"] == "failure" and message["title"] == f"finance: deploy failed ({record.revision.id})"
    for part in ("module finance", "upload of finance/0001.tar.gz", "took 95 s", "flow.py:3: ModuleNotFoundError",
                 "hint: fix flow.py", "Prefect UI: http://127.0.0.1:4200/runs",
                 "status: https://app.example.net/api/status?module=finance"):
        assert part in message["message"], part


def test_prefect_clouds_api_url_links_to_its_app() -> None:
    api = "https://api.prefect.cloud/api/accounts/a1/workspaces/w2"
    assert Links(api).lines("x") == ["Prefect UI: https://app.prefect.cloud/account/a1/workspace/w2/runs"]


def test_a_receiver_that_refuses_connections_is_an_outcome_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    sent = AppriseNotifier(f"json://127.0.0.1:{port}/hook", timeout=5).send(Notice("deploy.failed", "failure", "t", "b"))
    assert sent is not None and not sent.ok and time.monotonic() - started < 5


def test_a_receiver_that_hangs_holds_the_caller_up_for_the_timeout_at_most(hook: Receiver) -> None:
    hook.mode = "hang"
    started = time.monotonic()
    sent = AppriseNotifier(hook.url, timeout=1).send(Notice("deploy.failed", "failure", "t", "b"))
    took = time.monotonic() - started
    assert sent is not None and not sent.ok and sent.detail == "timed out after 1 s"
    assert took < 3  # the bound, plus thread start; nothing like apprise's own read timeout


def test_a_receiver_that_fails_and_a_url_apprise_cannot_use_are_outcomes(hook: Receiver) -> None:
    hook.mode = "fail"
    sent = AppriseNotifier(hook.url).send(Notice("deploy.failed", "failure", "t", "b"))
    assert sent is not None and not sent.ok and "no target accepted it" in sent.detail
    bad = AppriseNotifier("definitely-not-a-scheme://secret-token-123").send(Notice("k", "info", "t", "b"))
    assert bad is not None and not bad.ok and "secret-token-123" not in bad.detail


def test_notices_are_rate_limited_and_a_storm_is_counted_not_repeated(hook: Receiver) -> None:
    clock = [0.0]
    notifier = AppriseNotifier(hook.url, per_minute=3, key_interval=600, clock=lambda: clock[0])
    results = [notifier.send(Notice("deploy.succeeded", "success", f"t{n}", "b")) for n in range(4)]
    assert [r.ok for r in results if r] == [True, True, True, False]
    assert "more than 3 notices in a minute" in results[-1].detail  # type: ignore[union-attr]
    clock[0] = 61.0
    storm = [notifier.send(unauthorised_notice("10.0.0.9", "/api/acr-webhook")) for _ in range(5)]
    assert [r.ok for r in storm if r] == [True, False, False, False, False]
    clock[0] = 61.0 + 601
    later = notifier.send(unauthorised_notice("10.0.0.9", "/api/acr-webhook"))
    assert later is not None and later.ok
    assert "4 similar notice(s) held back" in hook.messages[-1]["message"]
    assert len(hook.messages) == 5
