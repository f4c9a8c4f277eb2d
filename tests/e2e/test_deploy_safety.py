"""A broken revision never replaces a working one, on real components: the agent's preflight
in the revision's own venv, and the bake window's automatic rollback against real flow runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deployer.models import RunStatus, StageStatus
from tests.conftest import ARTIFACTS
from tests.e2e import prefect_runs
from tests.e2e.harness import FLOW, Stack
from tests.fakes.receiver import Receiver, receiver

pytestmark = pytest.mark.timeout(900)
FINAL = {"COMPLETED", "FAILED", "CRASHED"}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as got:
        yield got


#: the code-only path (a real check run on the serving agent, pulling and verifying the new code);
#: the new-agent path's preflight parse is tests/unit/test_health_ladder.py's, and every e2e deploy
#: runs that preflight for real
@pytest.mark.parametrize("path,check", [("code", "check-code")])
def test_a_flow_importing_a_missing_package_is_rejected_before_cutover(stack: Stack, path: str, check: str,
                                                                      hook: Receiver, request: pytest.FixtureRequest) -> None:
    """Code-only: the serving agent's check run loads the new code; with new dependencies: the
    new agent's preflight loads it in the new image. Either way nothing is re-pointed, and the
    notification receiver hears of both deploys."""
    stack.extra["DEPLOYER_NOTIFY_URLS"] = hook.url
    stack.start_host()
    good = stack.deploy()
    assert good.status is RunStatus.SUCCEEDED, (good.error, stack.host_log())
    old = stack.current_agent()
    deps = {"requirements.txt": "prefect>=3.4,<4\n# new dependencies\n"} if path == "dependencies" else {}
    record = stack.deploy({"flow.py": "import pandas_is_not_installed_here\n" + FLOW, **deps})
    assert record.status is RunStatus.FAILED and record.error["code"] == "bundle_invalid", record.error  # type: ignore[index]
    [problem] = record.error["problems"]  # type: ignore[index]
    assert (problem["file"], problem["line"]) == ("flow.py", 1)
    assert "ModuleNotFoundError" in problem["message"] and "pandas_is_not_installed_here" in problem["message"]
    assert record.stage(check).status is StageStatus.FAILED  # type: ignore[union-attr]
    assert record.stage("plan").detail["path"] == path  # type: ignore[union-attr]
    assert stack.running_agents() == [old] and stack.current_agent() == old
    run_id = prefect_runs.start_run(stack.prefect_api, stack.name)
    assert prefect_runs.wait_state(stack.prefect_api, run_id, FINAL) == "COMPLETED"
    titles = [m["title"] for m in hook.messages]
    assert titles == [f"{stack.name}: deployed ({good.revision.id})",  # type: ignore[union-attr]
                      f"{stack.name}: deploy failed ({record.revision.id})"], titles  # type: ignore[union-attr]
    assert "pandas_is_not_installed_here" in hook.messages[1]["message"]
    assert record.notices[0]["ok"] is True
    if path == "code":  # the dashboard deployer dev serves, in a real browser, on these real records
        dashboard_shows_the_failed_deploy(stack, request)


def dashboard_shows_the_failed_deploy(stack: Stack, request: pytest.FixtureRequest) -> None:
    import json
    import urllib.request

    url = f"http://127.0.0.1:{stack.http_port}/api/dashboard"
    with urllib.request.urlopen(f"{url}?format=json", timeout=30) as got:
        document = json.loads(got.read())
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.http_port}/api/status", timeout=30) as got:
        status = json.loads(got.read())
    assert [m["module"] for m in document["modules"]] == [m["module"] for m in status["modules"]] == [stack.name]
    laptop = request.getfixturevalue("laptop")  # skipped, saying why, where chromium is missing
    laptop.goto(url)
    assert stack.name in laptop.inner_text("h2") and laptop.locator("td.bad", has_text="failed").count() >= 1
    assert laptop.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    laptop.screenshot(path=str(ARTIFACTS / "dashboard-deployer-dev.png"), full_page=True)
