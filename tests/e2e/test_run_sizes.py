"""A deployment's memory is a hard limit of each of its runs, on real processes: two deployments
of one module with different memory, each run allocating the same amount; the run beyond its
limit fails with MemoryError, the other deployment's run completes beside it."""

from __future__ import annotations

import pytest

from deployer.models import RunStatus
from tests.e2e import prefect_runs
from tests.e2e.harness import Stack

pytestmark = pytest.mark.timeout(600)

FLOW = '''from prefect import flow


@flow(name="{name}", log_prints=True)
def hello(seconds: float = 0.0, allocate_mb: int = 0) -> int:
    block = bytearray(allocate_mb * 1024 * 1024)
    print("allocated", len(block) // 1024 // 1024, "MB")
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


def test_each_deployments_runs_get_its_memory_limit(stack: Stack) -> None:
    stack.start_host()
    record = stack.deploy({"flow.py": FLOW, "prefect.yaml": PREFECT_YAML.format(name=stack.name)})
    assert record.status is RunStatus.SUCCEEDED, (record.error, stack.host_log())
    tight = prefect_runs.start_run(stack.prefect_api, stack.name, {"allocate_mb": 800})
    roomy = prefect_runs.start_run(stack.prefect_api, stack.name, {"allocate_mb": 800}, deployment="roomy")
    assert prefect_runs.wait_state(stack.prefect_api, roomy, FINAL) == "COMPLETED"
    assert prefect_runs.printed(stack.prefect_api, roomy, "allocated") == ["allocated 800 MB"]
    assert prefect_runs.wait_state(stack.prefect_api, tight, FINAL) == "FAILED"
    assert any("MemoryError" in line for line in prefect_runs.printed(stack.prefect_api, tight, "MemoryError"))
