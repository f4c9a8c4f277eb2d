"""Benchmark: a code-only change through the fast path (code store + re-registration) next to
the same kind of change through the full path (image build + agent rotation), in the same run.

Locally, through the trigger path (Azurite, `deployer dev`, a Prefect server, real workers), with
the default settings (a 10 s worker poll): upload of a code-only change -> live (the request
committed: new runs use the new code; measured from when intake saw the upload, and from the
upload itself) -> a new flow run prints the new code's output; then, on the same host, a change of
the dependencies (a venv built, a new agent started, proven, cut over). "Pipeline time" is the sum of the function
invocations the change cost (the host's ``Executed ... Duration=`` lines): what Flex Consumption
bills; the rest of the wall time is Prefect's (worker polls, flow-run processes).
Targets: fast path at least 5x faster than the full path, under 2 s of pipeline time.

On the fake Azure (simulated waits: ACR build 300 s, ACI start 90 s, a flow run on ACI 8 s: half
a 10 s worker poll plus Python's start), the same pair in simulated time, with the ARM calls of
each path. Target: under 5 s simulated for the fast path against minutes. Printed, never asserted.

    python bench/fast_deploy.py
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azure.storage.blob import BlobServiceClient  # noqa: E402

from bench.azure_rotation import KEY, request_for  # noqa: E402
from deployer import devservices  # noqa: E402
from deployer.adapters.blob_code import BlobCodeStore  # noqa: E402
from deployer.bootstrap import build  # noqa: E402
from deployer.config import Settings  # noqa: E402
from deployer.pipeline.upload import upload_module  # noqa: E402
from deployer.state import StateRepository  # noqa: E402
from tests.builders import write_module  # noqa: E402
from tests.e2e import prefect_runs  # noqa: E402
from tests.e2e.harness import FLOW, demo_files  # noqa: E402
from tests.fakes.azure import FakeAzure  # noqa: E402
from tests.fakes.documents import MemoryDocumentStore  # noqa: E402
from tests.fakes.platform import FakeBundleStore  # noqa: E402
from tests.integration.azure_world import azure_world  # noqa: E402

DURATION = re.compile(r"Executed 'Functions\.\w+' \(\w+, Duration=(\d+)ms\)")
FINAL = {"COMPLETED", "FAILED", "CRASHED"}


def code_change(marker: str, *, dependencies: bool = False) -> dict[str, str]:
    """New code; with ``dependencies``, a new requirements.txt too (a build and a new agent)."""
    changed = {"flow.py": FLOW.replace('print("greeting"', f'print("greeting {marker}"')}
    if dependencies:
        changed["requirements.txt"] = f"prefect>=3.4,<4\n# {marker}: a change of the dependencies\n"
    return changed


# -- local ------------------------------------------------------------------------------------


def local_change(services, work: Path, name: str, marker: str, log: Path, api: str,  # type: ignore[no-untyped-def]
                 *, dependencies: bool = False) -> dict:  # type: ignore[type-arg]
    """Upload a change; time until the request is live and until a new run prints its output."""
    offset = log.stat().st_size
    source = write_module(work / "src" / uuid.uuid4().hex[:6], name,
                          demo_files(name, code_change(marker, dependencies=dependencies)))
    start = time.perf_counter()
    uploaded = upload_module(services, source)
    while True:
        got = services.state.run(name, uploaded.request_id)
        if got is not None and got.value.status.finished:
            break
        time.sleep(0.05)
    done = time.perf_counter() - start
    run_id = prefect_runs.start_run(api, name)
    prefect_runs.wait_state(api, run_id, FINAL)
    printed = prefect_runs.printed(api, run_id, f"greeting {marker}")
    visible = time.perf_counter() - start
    with open(log, "rb") as f:
        f.seek(offset)
        billed = sum(int(ms) for ms in DURATION.findall(f.read().decode(errors="replace"))) / 1000
    record = got.value
    commit = record.stage("commit")
    live = (commit.finished_at - record.created_at).total_seconds() if commit and commit.finished_at else float("nan")
    return {"status": record.status.value, "done": done, "visible": visible, "billed": billed, "live": live,
            "new_output": any(f"greeting {marker}" in line for line in printed),
            "path": record.stage("plan").detail.get("path"),  # type: ignore[union-attr]
            "builds": sum(1 for s in record.stages if s.name == "build"),
            "starts": sum(1 for s in record.stages if s.name == "start-agent"),
            "stages": ", ".join(f"{s.name} {s.seconds:.2f}s" for s in record.stages if s.seconds is not None)}


def local_pair(work: Path, azurite, api: str) -> tuple[dict, dict]:  # type: ignore[no-untyped-def, type-arg]
    name = f"bench-{uuid.uuid4().hex[:6]}"
    values = {"AzureWebJobsStorage": azurite.connection_string, "PREFECT_API_URL": api,
              "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_HOME": str(work / "home"),
              "DEPLOYER_BAKE_SECONDS": "0"}  # the bake window (after live) is not what is measured
    services = build(Settings.from_env(values))
    settings_file = work / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": values}))  # the defaults: fast deploys on
    log = work / "dev.log"
    dev = devservices.dev_host(settings_file, log)
    try:
        deadline = time.monotonic() + 30  # the host imports and starts its listeners
        while (not log.exists() or b"listening" not in log.read_bytes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        local_change(services, work, name, "v1", log, api)  # the first deploy
        local_change(services, work, name, "warm", log, api)  # warm the host's clients
        fast = local_change(services, work, name, "code-only", log, api)
        full = local_change(services, work, name, "dependencies", log, api, dependencies=True)
    finally:
        devservices.stop_process(dev, grace=60)  # TERM, then KILL: never left behind
        for agent in services.runtime.list():  # agents outlive the host
            services.runtime.stop(agent.name)
    return fast, full


# -- fake Azure -------------------------------------------------------------------------------


def azure_changes(marker: str) -> dict[str, str]:
    return {"requirements.txt": "prefect>=3.4,<4\nprefect-azure[blob_storage]\n",
            "flow.py": f"from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return {marker!r}\n"}


class AnsweredBlobCodeStore(BlobCodeStore):
    """The blob code store, whose check requests the fake ACI's agents answer (their checker
    reads the blob channel with the agents' identity, which only Azure has)."""

    answer = None

    def ask_check(self, agent, request_id, pull_steps, entrypoints):  # type: ignore[no-untyped-def]
        super().ask_check(agent, request_id, pull_steps, entrypoints)
        self.answer(agent, request_id, [{"deployment": n, "ok": True} for n, _ in entrypoints])  # type: ignore[misc]


def azure_path(connection: str, fast: str) -> dict:  # type: ignore[type-arg]
    azure = FakeAzure(latency_seconds=0.1)
    azure.acr.build_seconds, azure.aci.provision_seconds = 300.0, 90.0
    code = AnsweredBlobCodeStore(BlobServiceClient.from_connection_string(connection), f"code-{uuid.uuid4().hex[:8]}")
    code.answer = azure.aci.answer_check
    world = azure_world({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "DEPLOYER_CONFIG_DIGEST_KEY": KEY,
                         "DEPLOYER_BAKE_SECONDS": "0", "DEPLOYER_FAST_DEPLOYS": fast},
                        StateRepository(MemoryDocumentStore()), FakeBundleStore(), None, azure, code=code)
    world.orchestrator.run_seconds = 8.0
    world.run(request_for(world, azure_changes("v1"), 1))
    azure.clock.advance(60)
    before, start = azure.calls.copy(), azure.clock.now()
    wall = time.perf_counter()
    record = world.run(request_for(world, azure_changes(f"v2-{fast}"), 2))
    calls = azure.calls - before
    arm = {k: v for k, v in sorted(calls.items()) if not k.startswith(("acr:", "storage:"))}
    return {"status": record.status.value, "simulated": (azure.clock.now() - start).total_seconds(),
            "own": time.perf_counter() - wall, "arm": arm,
            "path": record.stage("plan").detail.get("path")}  # type: ignore[union-attr]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-fast-"))
    try:
        with devservices.azurite(work / "azurite") as azurite, \
                devservices.prefect_server(work / "prefect") as api:
            fast, full = local_pair(work, azurite, api)
            azure_fast = azure_path(azurite.connection_string, "on")
            azure_full = azure_path(azurite.connection_string, "off")
        for label, r in (("code-only", fast), ("dependency", full)):
            print(f"fast-deploy: local {label} change ({r['path']}): upload seen -> live {r['live']:.2f} s; "
                  f"upload -> request done {r['done']:.2f} s, "
                  f"-> new run shows the new output {r['visible']:.2f} s (new output: {r['new_output']}); "
                  f"pipeline time {r['billed']:.2f} s; builds {r['builds']}, agent starts {r['starts']}")
            print(f"fast-deploy: local {label} stages {r['stages']}")
        print(f"fast-deploy: local ratio dependency/code-only {full['live'] / fast['live']:.1f}x to live (target >= 5x; "
              f"fast live {fast['live']:.2f} s after the upload is seen, target <= 2 s); "
              f"{full['visible'] / fast['visible']:.1f}x to the new output; fast pipeline time "
              f"{fast['billed']:.2f} s")
        for label, r in (("fast", azure_fast), ("full", azure_full)):
            print(f"fast-deploy: azure {label} path ({r['path']}): {r['simulated']:.0f} s simulated, "
                  f"own {r['own']:.2f} s wall; ARM calls " + ", ".join(f"{k} {v}" for k, v in r["arm"].items()))
        print(f"fast-deploy: azure ratio full/fast {azure_full['simulated'] / azure_fast['simulated']:.1f}x "
              f"simulated (target: fast < 5 s against minutes)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
