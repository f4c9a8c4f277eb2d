"""`deployer deploy` (the deploy.sh replacement) runs the pipeline in-process; --dry-run only
plans; `status --json` shows the agent and its worker."""

from __future__ import annotations

import json

import pytest

from deployer.models import RunStatus
from tests.builders import write_module
from tests.e2e.harness import Stack, demo_files

pytestmark = pytest.mark.timeout(600)



def test_deploy_dry_run_changes_nothing_then_deploy_runs_the_pipeline(stack: Stack) -> None:
    root = write_module(stack.work / "src", stack.name, demo_files(stack.name))
    dry = stack.cli("deploy", str(root), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [op["op"] for op in plan["operations"]] == ["publish-code", "build", "start-agent", "check-entrypoints",
                                                       "wait-online", "register", "wait-ready", "commit"]
    assert (plan["path"], plan["changed"]) == ("first", ["dependencies", "code", "config"])
    assert stack.agents() == [] and stack.services.bundles.list() == []

    done = stack.cli("deploy", str(root))
    assert done.returncode == 0, done.stderr
    assert "✓ wait-online" in done.stderr and "succeeded" in done.stderr
    [agent] = stack.running_agents()

    again = stack.cli("deploy", str(root), "--dry-run")
    assert again.returncode == 0 and "already runs this revision" in again.stdout
    (root / "flow.py").write_text((root / "flow.py").read_text() + "\n# a code change\n")
    code = stack.cli("deploy", str(root), "--dry-run")
    assert "changed: code; path: code" in code.stdout and "check on agent" in code.stdout, code.stdout

    status = stack.cli("status", stack.name, "--json")
    [module] = json.loads(status.stdout)["modules"]
    assert module["state"]["agent"]["name"] == agent
    assert [(a["agent"]["name"], a["worker"], a["current"]) for a in module["agents"]] == [(agent, "ONLINE", True)]
    assert module["last_run"]["status"] == RunStatus.SUCCEEDED.value

    logs = stack.cli("logs", stack.name)
    assert logs.returncode == 0 and "Worker" in logs.stdout  # the prefect worker's own output
    request_id = module["last_run"]["request_id"]
    stages = stack.cli("logs", stack.name, "--request", request_id)
    assert stages.returncode == 0 and "wait-online: done" in stages.stdout and "start agent" in stages.stdout
    assert stack.cli("logs", stack.name, "--request", "nope").returncode == 1


def test_deploy_of_an_invalid_module_exits_1_and_starts_nothing(stack: Stack) -> None:
    root = write_module(stack.work / "src", stack.name, demo_files(stack.name, {"prefect.yaml": "deployments: []\n"}))
    done = stack.cli("deploy", str(root))
    assert done.returncode == 1 and "has no deployments" in done.stderr and "Traceback" not in done.stderr
    assert stack.agents() == []
