"""`make demo`, the README's first command, as a newcomer runs it: it deploys flows/finance
through the real trigger path, runs it once and stops everything it started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.devservices import port_open

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_deploys_the_example_runs_it_and_leaves_nothing_running() -> None:
    if not (ROOT / "flows" / "finance" / ".env").exists():
        pytest.skip("flows/finance/.env is written by `make setup` (make demo and make test do it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    done = subprocess.run([sys.executable, "-m", "deployer.demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=840)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "COMPLETED" in done.stdout and "finance" in done.stdout
    assert "5/5" in done.stderr and "stopping agents" in done.stderr
    ports = [int(p) for p in re.findall(r"Azurite blob :(\d+), queue :(\d+)", done.stderr)[0]]
    assert not any(port_open(p) for p in ports)  # what it started, it stopped
