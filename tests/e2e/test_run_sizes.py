"""A deployment's memory is the limit of each of its runs, on real processes: two deployments of
one module with different memory, each run holding the same amount; the agent stops the run
above its limit (CRASHED, its log says why), the other deployment's run completes beside it."""

from __future__ import annotations

import time

import pytest

from deployer import run_limits
from deployer.models import RunStatus
from tests.e2e import prefect_runs
from tests.e2e.harness import Stack

pytestmark = pytest.mark.timeout(600)

FLOW = '''import time

from prefect import flow


@flow(name="{name}", log_prints=True)
def hello(seconds: float = 3.0, allocate_mb: int = 0) -> int:
    block = bytearray(allocate_mb * 1024 * 1024)
    print("allocated", len(block) // 1024 // 1024, "MB")
    time.sleep(seconds)  # held, as a real job holds its data
    return len(block)
'''
PREFECT_YAML = """name: {name}
deployments:
  - name: hello
    entrypoint: flow.py:hello
    work_pool:
      job_variables: {{memory: 0.5}}
  - name: roomy
    entrypoint: flow.py:hello
    work_pool:
      job_variables: {{memory: 2}}
"""
FINAL = {"COMPLETED", "FAILED", "CRASHED"}
CANARY = "canary-0b7d4e2a-never-in-prefect"


def test_each_deployments_runs_get_its_memory_limit(stack: Stack) -> None:
    stack.start_host()
    record = stack.deploy({"flow.py": FLOW, "prefect.yaml": PREFECT_YAML.format(name=stack.name)})
    assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
    roomy = prefect_runs.start_run(stack.prefect_api, stack.name, {"allocate_mb": 800}, deployment="roomy")
    tight = stack.cli("run", f"{stack.name}/hello", "--param", "allocate_mb=800", "--watch")
    assert tight.returncode == 1, (tight.stdout, tight.stderr)
    assert ": CRASHED after" in tight.stderr and "stopped by its agent, it used 0." in tight.stderr
    assert "more than the memory limit of hello (0.5 GB, work_pool.job_variables.memory" in tight.stderr
    assert prefect_runs.wait_state(stack.prefect_api, roomy, FINAL) == "COMPLETED"
    assert prefect_runs.printed(stack.prefect_api, roomy, "allocated") == ["allocated 800 MB"]
    [stopped] = run_limits.parse(stack.services.runtime.logs(stack.current_agent(), tail=2000))
    assert stopped["limit"] == 512 * 1024**2 < stopped["used"]


def test_with_isolation_run_each_run_is_a_process_of_its_own_under_its_deployments_limit(
        storage_connection: str, prefect_api: str, tmp_path, venv_store) -> None:  # type: ignore[no-untyped-def]
    """No agent: the dispatcher (a timer of ``deployer dev``) starts each run as a process of its
    own from the revision's venv; the run above its deployment's memory is stopped and says so,
    the other deployment's run completes, and their processes are gone afterwards."""
    from deployer.ports.agents import Role

    stack = Stack(storage_connection, prefect_api, tmp_path, venvs=venv_store,
                  extra={"DEPLOYER_DISPATCH_SCHEDULE": "*/2 * * * * *"})
    try:
        stack.start_host()
        yaml = PREFECT_YAML.format(name=stack.name).replace("deployments:", "deployer:\n  isolation: run\ndeployments:")
        # the .env reaches each run's process (it prints the value's length) and nothing of Prefect's
        flow = FLOW.replace("import time\n", "import os\nimport time\n").replace(
            '    print("allocated"', '    print("token of", len(os.environ.get("API_TOKEN", "")))\n'
            '    print("allocated"')
        record = stack.deploy({"flow.py": flow, "prefect.yaml": yaml, ".env": f"API_TOKEN={CANARY}\n"})
        assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
        assert [op["op"] for op in record.plan] == ["publish-code", "build", "check-container", "register", "commit"]
        assert stack.services.runtime.list(stack.name) == []  # no agent
        roomy = prefect_runs.start_run(stack.prefect_api, stack.name, {"allocate_mb": 800}, deployment="roomy")
        tight = stack.cli("run", f"{stack.name}/hello", "--param", "allocate_mb=800", "--watch")
        assert tight.returncode == 1, (tight.stdout, tight.stderr, stack.host_log())
        assert ": CRASHED after" in tight.stderr and "stopped by the deployer, it used 0." in tight.stderr
        assert "more than the memory limit of hello (0.5 GB, work_pool.job_variables.memory" in tight.stderr
        assert prefect_runs.wait_state(stack.prefect_api, roomy, FINAL) == "COMPLETED", stack.host_log()
        assert prefect_runs.printed(stack.prefect_api, roomy, "allocated") == ["allocated 800 MB"]
        assert prefect_runs.printed(stack.prefect_api, roomy, "token of") == [f"token of {len(CANARY)}"]
        assert CANARY not in prefect_runs.everything_of(stack.prefect_api, stack.name)
        deadline = time.monotonic() + 30
        while stack.services.runtime.list(stack.name, role=Role.RUN) and time.monotonic() < deadline:
            time.sleep(0.5)  # the next ticks remove the ended processes' records
        assert stack.services.runtime.list(stack.name, role=Role.RUN) == []
    finally:
        stack.cleanup()
