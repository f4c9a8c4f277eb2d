"""Cleanup on the local backend: the same planner over local agents, images and records, from
the CLI and from the timer that `deployer dev` fires."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deployer.models import RunStatus
from deployer.pipeline.cleanup import last_report
from deployer.ports.agents import AgentSpec, AgentState
from deployer.ports.images import Image
from tests.e2e.harness import Stack

pytestmark = pytest.mark.timeout(900)



def dead_agent(stack: Stack) -> str:
    """An agent whose process exited: its image's python exits at once."""
    image = stack.work / "broken-image"
    (image / "venv" / "bin").mkdir(parents=True)
    python = image / "venv" / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 3\n")
    python.chmod(0o755)
    name = f"agent-{stack.name}-19990101000000"
    stack.services.runtime.start(AgentSpec(name=name, module=stack.name, revision_id="dead-beef", pool=stack.name,
                                           image=Image(str(image), str(image)), queue=name, env={}))
    deadline = time.monotonic() + 10
    while stack.services.runtime.get(name).state is AgentState.RUNNING and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.1)
    return name


def test_cli_cleanup_plans_then_deletes_stale_local_images_and_agents(stack: Stack) -> None:
    stack.extra.update({"DEPLOYER_KEEP_REVISIONS": "1", "DEPLOYER_ROLLBACK_WINDOW_DAYS": "0"})
    stack.start_host()
    for n in range(3):
        assert stack.deploy({"requirements.txt": f"prefect>=3.4,<4\n# revision {n}\n"}).status is RunStatus.SUCCEEDED
    images = stack.work / "home" / "images" / stack.name
    assert len(list(images.iterdir())) == 3
    dead = dead_agent(stack)
    current = stack.current_agent()

    dry = stack.cli("cleanup", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = {(i["kind"], i["target"]) for i in json.loads(dry.stdout)["items"] if i["outcome"] == "planned"}
    assert ("agent", dead) in planned and len([k for k, _ in planned if k == "manifest"]) == 2
    assert len(list(images.iterdir())) == 3 and stack.services.runtime.get(dead) is not None

    done = stack.cli("cleanup")
    assert done.returncode == 0, done.stderr
    assert "deleted" in done.stdout
    current_image = Path(stack.services.state.module(stack.name).value.current.image)  # type: ignore[union-attr]
    assert list(images.iterdir()) == [current_image]  # keep 1 revision: the current one
    assert stack.services.runtime.get(dead) is None
    assert stack.running_agents() == [current]
    status = stack.cli("status")
    assert "last cleanup" in status.stdout


def test_the_timer_runs_the_cleanup_under_deployer_dev(stack: Stack) -> None:
    stack.extra["CLEANUP_SCHEDULE"] = "*/2 * * * * *"
    stack.start_host()
    deadline = time.monotonic() + 60
    while last_report(stack.services) is None:
        assert time.monotonic() < deadline, stack.host_log()
        time.sleep(0.5)
    assert "Functions.nightly_cleanup" in stack.host_log()
