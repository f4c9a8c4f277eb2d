"""A credential in a URL setting (``https://user:password@host/api``, a token in the query) never
reaches a page, a notification, a log line, an error, a record or an agent's plain settings."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from deployer import codec
from deployer.dashboard import dashboard_data, render
from deployer.errors import UpstreamError
from deployer.models import RunStatus
from deployer.pipeline.status import module_statuses
from deployer.urls import has_credentials, mask, mask_text
from tests.fakes.notifier import Recorder, notify_into
from tests.unit.pipeline_world import World
from tests.unit.test_health_ladder import CHANGE, broken

PASSWORD = "hunter2-Pa55word"
TOKEN = "tok-7c1d9e0f"
FUNCTION_KEY = "fnkey-55aa66bb"
API = f"https://alice:{PASSWORD}@prefect.example.com/api?token={TOKEN}"
PUBLIC = f"https://deployer.example.com/?code={FUNCTION_KEY}"
SECRETS = (PASSWORD, TOKEN, FUNCTION_KEY)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://alice:pw@host/api", "https://alice:***@host/api"),
    ("https://token-only@host/api", "https://***@host/api"),
    ("https://acct.blob.core.windows.net/c?sv=2024&sig=abc%2Bdef&se=x", "https://acct.blob.core.windows.net/c?sv=2024&sig=***&se=x"),
    ("https://app.azurewebsites.net/api/x?code=k1&module=a", "https://app.azurewebsites.net/api/x?code=***&module=a"),
    ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
])
def test_urls_are_shown_without_their_credentials(url: str, shown: str) -> None:
    assert mask(url) == shown and has_credentials(url) == (url != shown)
    assert mask_text(f"failed for url '{url}': 401") == f"failed for url '{shown}': 401"


def with_urls(world: World) -> World:
    world.services.settings = replace(world.services.settings, prefect_api_url=API, public_url=PUBLIC)
    return world


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_no_page_notification_record_or_status_shows_a_url_credential(world: World) -> None:
    told = notify_into(with_urls(world), Recorder())
    world.run(world.request())
    world.runtime.preflight = broken
    failed = world.run(world.request(CHANGE))
    assert failed.status is RunStatus.FAILED
    page = render(dashboard_data(world.services))
    assert "https://prefect.example.com" in page
    assert_clean(page)
    assert_clean(json.dumps(codec.to_data(dashboard_data(world.services))))
    assert [n.kind for n in told.notices] == ["deploy.succeeded", "deploy.failed"]
    for notice in told.notices:
        assert "https://prefect.example.com/runs" in notice.body and "https://deployer.example.com/api/status" in notice.body
        assert_clean(notice.title + notice.body)
    for record in world.state.runs("demo"):
        assert_clean(codec.dumps(record).decode())
    assert_clean(json.dumps(codec.to_data(module_statuses(world.services))))
    assert_clean(repr(world.services.settings))


def test_an_agent_gets_an_api_url_with_a_credential_only_as_a_secret(world: World) -> None:
    with_urls(world).run(world.request())
    [agent] = world.runtime.agents.values()
    assert agent.spec.env["PREFECT_API_URL"] == API and "PREFECT_API_URL" not in agent.spec.settings


def test_errors_and_their_log_lines_show_no_url_credential(caplog: pytest.LogCaptureFixture) -> None:
    error = UpstreamError(f"Client error '401 Unauthorized' for url '{API}/flows/filter'",
                          hint=f"check {PUBLIC}", log_tail=f"GET {API}")
    with caplog.at_level(logging.INFO):
        logging.getLogger("deployer.test").error("step.failed error=%s", error.message)
    assert_clean(str(error) + json.dumps(error.to_dict()) + caplog.text)
    assert "alice:***@prefect.example.com" in error.message
