"""The whole path against real Azure, on the environment tests/live/conftest.py brings up with
`azd up`: the app's Key Vault references resolved at creation; an upload builds with ACR Tasks and
starts an agent that comes ONLINE with the Prefect key; a second build of the deployed module
(whose registry cache push must redeploy nothing); a push to the registry redeploys through the
ACR webhook; a rollback; a cleanup that really deletes a tag and a container group; the module
removed. Run with `make live-test`; skipped, with the reason, without a subscription."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

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


def test_the_principal_type_is_what_azd_runs_as(live: LiveEnvironment) -> None:
    """A service principal (CI) gets ServicePrincipal role assignments, a person User."""
    runs_as = live.az("account", "show", "--query", "user.type", "-o", "tsv").strip()
    expected = "ServicePrincipal" if runs_as == "servicePrincipal" else "User"
    assert live.azd_value("AZURE_PRINCIPAL_TYPE") == expected


def test_the_apps_key_vault_references_are_resolved_from_the_start(live: LiveEnvironment) -> None:
    """Its user-assigned identity had Key Vault Secrets User before the site existed."""
    app, group = live.azd_value("AZURE_FUNCTION_APP_NAME"), live.azd_value("AZURE_RESOURCE_GROUP")
    sub = live.values["AZURE_SUBSCRIPTION_ID"]
    url = (f"https://management.azure.com/subscriptions/{sub}/resourceGroups/{group}/providers/"
           f"Microsoft.Web/sites/{app}/config/configreferences/appsettings?api-version=2023-12-01")
    references = json.loads(live.az("rest", "--method", "get", "--url", url))["value"]
    assert references and all(r["properties"]["status"] == "Resolved" for r in references), references


def test_the_whole_path(live: LiveEnvironment) -> None:
    # 1. an upload: build on ACR Tasks, an agent on ACI, ONLINE in Prefect with the key
    uploaded = live.json("upload", "flows/finance", "--wait", "--timeout", "2400", timeout=2700)
    assert uploaded["status"] == "succeeded", uploaded
    current = _serving(live)["state"]["current"]
    first_revision = _revision_id(current)

    # 1b. a second build of the deployed module: ACR Tasks pushes its build cache
    # (cache_quickrun_build) into the module's repository, and the webhook delivers it; nothing
    # may redeploy from it (nor from the build's own image push)
    registry = live.settings_values()["DEPLOYER_REGISTRY"]
    repository = current["image"].split("/", 1)[1].split("@")[0].rsplit(":", 1)[0]
    changed = _with_extra_requirement()
    try:
        second = live.json("upload", "flows/finance", "--wait", "--timeout", "2400", timeout=2700)
    finally:
        changed()
    assert second["status"] == "succeeded", second
    tags = live.az("acr", "repository", "show-tags", "-n", registry, "--repository", repository, "-o", "tsv")
    assert "cache_quickrun_build" in tags.split()
    time.sleep(120)  # the webhook's deliveries of both pushes
    assert not [e for e in _history(live) if e["kind"] in ("redeploy", "rollback") or e["outcome"] == "rolled_back"]

    # 2. a push of the module's image under a new tag: the ACR webhook queues a redeploy
    live.az("acr", "import", "-n", registry, "--source", current["image"],
            "--image", f"{repository}:live-push", "--force")
    _wait_for(live, lambda e: e["kind"] == "redeploy" and e["outcome"] == "succeeded", "webhook redeploy")

    # 3. a rollback to the first revision, queued for the app
    live.json("rollback", "finance", "--to", first_revision, "--queue")
    _wait_for(live, lambda e: e["kind"] == "rollback" and e["outcome"] == "succeeded", "rollback")

    # 4. a cleanup that really deletes: a stale tag beyond the newest one, and a container group of
    # the module that ended (an agent the cleanup retires); the serving agent and the build cache stay
    live.az("acr", "import", "-n", registry, "--source", current["image"],
            "--image", f"{repository}:stale-tag", "--force")
    agents_group = live.settings_values()["DEPLOYER_RESOURCE_GROUP"]
    live.az("container", "create", "-g", agents_group, "-n", "agent-finance-20000101000000",
            "--image", "mcr.microsoft.com/cbl-mariner/base/core:2.0", "--command-line", "true",
            "--restart-policy", "Never", "--os-type", "Linux", "--cpu", "1", "--memory", "0.5",
            "--tags", "managed-by=prefect-collective-deployer", "module=finance", "revision=old-old")
    keep_one = {"DEPLOYER_KEEP_REVISIONS": "1", "DEPLOYER_ROLLBACK_WINDOW_DAYS": "0"}
    planned = live.json("cleanup", "--dry-run", env=keep_one)
    assert planned["dry_run"] is True
    done = live.json("cleanup", env=keep_one)
    assert not [i for i in done["items"] if i["outcome"] == "failed"], done
    deleted = {(i["kind"], i["target"]) for i in done["items"] if i["outcome"] == "deleted"}
    assert ("tag", "stale-tag") in deleted and ("agent", "agent-finance-20000101000000") in deleted, deleted
    assert "cache_quickrun_build" in live.az("acr", "repository", "show-tags", "-n", registry,
                                             "--repository", repository, "-o", "tsv").split()
    _serving(live)

    # 5. the module out of service (its pool goes with the environment's teardown)
    removed = live.json("remove", "finance", "--force")
    assert removed["module"] == "finance"


def _with_extra_requirement() -> Callable[[], None]:
    """flows/finance with one more requirement (a dependency change: a build); the undo."""
    path = Path(__file__).resolve().parents[2] / "flows" / "finance" / "requirements.txt"
    before = path.read_text()
    path.write_text(before.rstrip("\n") + "\nsix\n")

    def undo() -> None:
        path.write_text(before)

    return undo
