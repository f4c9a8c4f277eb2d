"""The whole path against real Azure, on the environment tests/live/conftest.py brings up with
`azd up`: an upload builds with ACR Tasks and starts an agent that comes ONLINE with the Prefect
key; a push to the registry redeploys through the ACR webhook; a rollback; a cleanup; the module
removed. Run with `make live-test`; skipped, with the reason, without a subscription."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.live.conftest import LiveEnvironment

pytestmark = pytest.mark.live


def _serving(live: LiveEnvironment) -> dict:
    """The module's status; asserts its current agent's worker is ONLINE in Prefect."""
    [module] = live.json("status", "finance")["modules"]
    assert any(a["role"] == "current" and a["worker"] == "ONLINE" for a in module["agents"]), module
    return module


def _revision_id(revision: dict) -> str:
    from deployer.bundle.digest import short

    return f"{short(revision['code_digest'])}-{short(revision['config_digest'], 8)}"


def _history(live: LiveEnvironment) -> list[dict]:
    return live.json("history", "finance", "--limit", "20")["entries"]


def _wait_for(live: LiveEnvironment, predicate, what: str, timeout: float = 1800) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in _history(live):
            if predicate(entry):
                return entry
        time.sleep(15)
    raise AssertionError(f"no {what} within {timeout:.0f}s: {_history(live)[:3]}")


def test_the_whole_path(live: LiveEnvironment) -> None:
    # 1. an upload: build on ACR Tasks, an agent on ACI, ONLINE in Prefect with the key
    uploaded = live.json("upload", "flows/finance", "--wait", "--timeout", "2400", timeout=2700)
    assert uploaded["status"] == "succeeded", uploaded
    current = _serving(live)["state"]["current"]
    first_revision = _revision_id(current)

    # 2. a push of the module's image under a new tag: the ACR webhook queues a redeploy
    registry = live.settings_values()["DEPLOYER_REGISTRY"]
    repository = current["image"].split("/", 1)[1].split("@")[0].rsplit(":", 1)[0]
    subprocess.run(["az", "acr", "import", "-n", registry, "--source", current["image"],
                    "--image", f"{repository}:live-push", "--force"], check=True, timeout=600)
    _wait_for(live, lambda e: e["kind"] == "redeploy" and e["outcome"] == "succeeded", "webhook redeploy")

    # 3. a rollback to the first revision, queued for the app
    live.json("rollback", "finance", "--to", first_revision, "--queue")
    _wait_for(live, lambda e: e["kind"] == "rollback" and e["outcome"] == "succeeded", "rollback")

    # 4. a cleanup: what it would delete, then the run; the serving agent stays
    planned = live.json("cleanup", "--dry-run")
    assert planned["dry_run"] is True
    done = live.json("cleanup")
    assert not [i for i in done["items"] if i["outcome"] == "failed"], done
    _serving(live)

    # 5. the module out of service (its pool goes with the environment's teardown)
    removed = live.json("remove", "finance", "--force")
    assert removed["module"] == "finance"
