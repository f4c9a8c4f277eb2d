"""The walk README shows, on real processes: a module deployed to dev, promoted to prod (its own
Prefect server), waiting for an approval, then serving prod with dev's image and code and
prod's .env.prod; a rejected promotion changes nothing in prod. Prints the promotion's time
(request to serving) next to the deploy's, measured in the same run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deployer import devservices
from deployer.models import RunStatus
from tests.builders import write_module
from tests.e2e import prefect_runs
from tests.e2e.harness import Stack, demo_files

pytestmark = pytest.mark.timeout(900)
FINAL = {"COMPLETED", "FAILED", "CRASHED"}


def test_a_module_goes_from_dev_to_prod_with_an_approval(
        storage_connection: str, prefect_api: str, tmp_path: Path, venv_store: Path) -> None:
    with devservices.prefect_server(tmp_path / "prod-prefect") as prod_api:
        stack = Stack(storage_connection, prefect_api, tmp_path, venvs=venv_store, extra={
            "DEPLOYER_ENVIRONMENTS": "dev,prod", "DEPLOYER_ENV__prod__PREFECT_API_URL": prod_api,
            "DEPLOYER_ENV__prod__APPROVAL": "required"})
        prod = stack.services.in_environment("prod")
        try:
            root = write_module(tmp_path / "src", stack.name, demo_files(stack.name, {
                ".env": "GREETING=hi\n", ".env.prod": "GREETING=hello-prod\n"}))
            started = time.monotonic()
            deployed = stack.cli("deploy", str(root), "--json")
            deploy_seconds = time.monotonic() - started
            assert deployed.returncode == 0, deployed.stderr
            asked = stack.cli("promote", stack.name, "--to", "prod", "--json")
            assert asked.returncode == 0, asked.stderr
            waiting = json.loads(asked.stdout)
            assert waiting["status"] == "awaiting_approval" and prod.state.module(stack.name) is None
            started = time.monotonic()
            approved = stack.cli("--env", "prod", "approve", waiting["request_id"][:8], "--json")
            promote_seconds = time.monotonic() - started
            assert approved.returncode == 0, approved.stderr
            record = json.loads(approved.stdout)
            assert record["status"] == "succeeded" and "build" not in {s["name"] for s in record["stages"]}
            dev_serves = stack.services.state.module(stack.name).value.current  # type: ignore[union-attr]
            prod_serves = prod.state.module(stack.name).value.current  # type: ignore[union-attr]
            assert (prod_serves.image, prod_serves.code_digest) == (dev_serves.image, dev_serves.code_digest)  # type: ignore[union-attr]
            run = prefect_runs.start_run(prod_api, stack.name)
            assert prefect_runs.wait_state(prod_api, run, FINAL) == "COMPLETED"
            assert prefect_runs.printed(prod_api, run, "greeting") == ["greeting hello-prod"]
            print(f"\nenvironments: deploy to dev {deploy_seconds:.1f} s (build, agent, proof); "
                  f"promotion to prod, request to serving {promote_seconds:.1f} s (no build); "
                  f"{deploy_seconds / promote_seconds:.1f}x")

            changed = write_module(tmp_path / "src2", stack.name, demo_files(stack.name, {
                ".env": "GREETING=changed\n", ".env.prod": "GREETING=hello-prod\n"}))
            again = stack.cli("deploy", str(changed))
            assert again.returncode == 0, again.stderr
            asked = json.loads(stack.cli("promote", stack.name, "--to", "prod", "--json").stdout)
            rejected = stack.cli("--env", "prod", "reject", asked["request_id"][:8], "--reason", "not today")
            assert rejected.returncode == 0, rejected.stderr
            assert prod.state.module(stack.name).value.current == prod_serves  # type: ignore[union-attr]
            assert prod.state.history(stack.name)[-1].outcome is RunStatus.REJECTED
            matrix = json.loads(stack.cli("status", "--json").stdout)
            [row] = [r for r in matrix["modules"] if r["module"] == stack.name]
            assert row["cells"]["prod"]["behind"] == 1 and row["cells"]["dev"]["revision"]
        finally:
            for agent in prod.runtime.list():
                prod.runtime.stop(agent.name)
            stack.cleanup()
