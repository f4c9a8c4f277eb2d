"""Benchmark: a promotion from dev to prod (request to serving: no build, prod's agent started
and proven) next to a deploy of the same module into dev (its venv built, its agent started and
proven), in the same run, on the local backend: Azurite, a Prefect server per environment, the
CLI driving each request as a user would (`deployer deploy`, `deployer promote`).

    python bench/promotion.py        (about a minute)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer import devservices  # noqa: E402
from tests.builders import write_module  # noqa: E402
from tests.e2e.harness import Stack, demo_files  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-promotion-"))
    try:
        with devservices.azurite(work / "azurite") as azurite, \
                devservices.prefect_server(work / "dev-prefect") as dev_api, \
                devservices.prefect_server(work / "prod-prefect") as prod_api:
            stack = Stack(azurite.connection_string, dev_api, work / "stack", extra={
                "DEPLOYER_ENVIRONMENTS": "dev,prod", "DEPLOYER_ENV__prod__PREFECT_API_URL": prod_api})
            (work / "stack").mkdir()
            try:
                root = write_module(work / "src", stack.name, demo_files(stack.name, {
                    ".env": "GREETING=hi\n", ".env.prod": "GREETING=hello-prod\n"}))
                started = time.perf_counter()
                deployed = stack.cli("deploy", str(root), "--json")
                deploy = time.perf_counter() - started
                assert deployed.returncode == 0, deployed.stderr
                started = time.perf_counter()
                promoted = stack.cli("promote", stack.name, "--to", "prod", "--json")
                promote = time.perf_counter() - started
                assert promoted.returncode == 0, promoted.stderr
                record = json.loads(promoted.stdout)
                built = "build" in {s["name"] for s in record["stages"]}
            finally:
                prod = stack.services.in_environment("prod")
                for agent in prod.runtime.list():
                    prod.runtime.stop(agent.name)
                stack.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"promotion: dev -> prod, request to serving {promote:.1f} s ({record['status']}, "
          f"build: {'yes' if built else 'none'}); the same module deployed into dev {deploy:.1f} s "
          f"(venv built, agent started and proven); the promotion takes {promote / deploy:.0%} of it, "
          f"{deploy / promote:.1f}x faster")


if __name__ == "__main__":
    main()
