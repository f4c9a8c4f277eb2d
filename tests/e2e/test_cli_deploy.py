"""`deployer deploy` (the deploy.sh replacement) runs the pipeline in-process; --dry-run only
plans; `status --json` shows the agent and its worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deployer.models import RunStatus
from tests.builders import write_module
from tests.e2e.harness import ROOT, Stack, demo_files

pytestmark = pytest.mark.timeout(600)


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    return subprocess.run([sys.executable, "-m", "deployer", "--settings", str(stack.settings_file), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def test_deploy_dry_run_changes_nothing_then_deploy_runs_the_pipeline(stack: Stack) -> None:
    root = write_module(stack.work / "src", stack.name, demo_files(stack.name))
    dry = cli(stack, "deploy", str(root), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [op["action"] for op in plan["operations"]] == ["build", "start-agent", "wait-online", "register", "record"]
    assert stack.agents() == [] and stack.services.bundles.list() == []

    done = cli(stack, "deploy", str(root))
    assert done.returncode == 0, done.stderr
    assert "✓ health" in done.stderr and "succeeded" in done.stderr
    [agent] = stack.running_agents()

    again = cli(stack, "deploy", str(root), "--dry-run")
    assert again.returncode == 0 and "already runs this revision" in again.stdout

    status = cli(stack, "status", stack.name, "--json")
    [module] = json.loads(status.stdout)["modules"]
    assert module["state"]["agent"]["name"] == agent
    assert [(a["agent"]["name"], a["worker"], a["current"]) for a in module["agents"]] == [(agent, "ONLINE", True)]
    assert module["last_run"]["status"] == RunStatus.SUCCEEDED.value


def test_deploy_of_an_invalid_module_exits_1_and_starts_nothing(stack: Stack) -> None:
    root = write_module(stack.work / "src", stack.name, demo_files(stack.name, {"prefect.yaml": "deployments: []\n"}))
    done = cli(stack, "deploy", str(root))
    assert done.returncode == 1 and "has no deployments" in done.stderr and "Traceback" not in done.stderr
    assert stack.agents() == []
