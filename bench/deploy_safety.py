"""Benchmark: what deploy safety costs and how fast it acts.

    ladder     on a good deploy, the time from the worker being ONLINE to the cutover (READY, the
               handing over), next to the time ONLINE itself took (target: under 1 s beyond ONLINE)
    rollback   for a revision whose runs fail, the time from its first failed run to the previous
               revision serving again, next to one poll interval plus an agent's start measured in
               the same run (the target)

once on the fake Azure backend (simulated waits: ACI start 90 s, 100 ms per ARM call; the extra
ARM calls of the ladder are printed) and once locally on real components (Azurite, a Prefect
server, `deployer dev`, real workers). Printed, never asserted.

    python bench/deploy_safety.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serverless import code, make_world, request_for  # noqa: E402
from deployer import devservices  # noqa: E402
from deployer.bootstrap import build  # noqa: E402
from deployer.config import Settings  # noqa: E402
from deployer.models import RunRecord, RunStatus  # noqa: E402
from deployer.pipeline.upload import upload_module  # noqa: E402
from tests.builders import write_module  # noqa: E402
from tests.e2e import prefect_runs  # noqa: E402
from tests.e2e.harness import FLOW, demo_files  # noqa: E402

POLL_SECONDS = 2  # agents' PREFECT_WORKER_QUERY_SECONDS in the local half


def seconds(record: RunRecord, a: str, b: str) -> float:
    """From the end of stage a to the end of stage b."""
    first, second = record.stage(a), record.stage(b)
    assert first and second and first.finished_at and second.finished_at
    return (second.finished_at - first.finished_at).total_seconds()


def stage_seconds(record: RunRecord, name: str) -> float:
    stage = record.stage(name)
    assert stage and stage.seconds is not None
    return stage.seconds


# -- the fake Azure backend -----------------------------------------------------------------------


def azure() -> None:
    world = make_world()
    world.services.settings = type(world.services.settings)(**{
        **world.services.settings.__dict__, "bake_seconds": 600, "bake_runs": 3})
    world.run(request_for(world, "demo", 1))
    azure_ = world.azure
    before = azure_.calls.copy()
    good = request_for(world, "demo", 2, code(2))
    settled = world.run(good, settled=True)
    ladder = seconds(settled, "wait-online", "commit")
    online = stage_seconds(settled, "wait-online") + stage_seconds(settled, "check-entrypoints")
    calls = azure_.calls - before
    ladder_calls = {k: v for k, v in calls.items() if k.startswith("Containers_")}
    world.run(good)  # the bake window passes (no runs), the old agent goes
    print(f"safety-azure: ladder {ladder:.1f} s simulated from ONLINE to cutover, next to {online:.0f} s "
          f"for the agent to start and come ONLINE (target: under 1 s beyond ONLINE)")
    print("safety-azure: ARM calls of the ladder " + (", ".join(f"{k} {v}" for k, v in ladder_calls.items())
                                                     or "none") + f" (of {sum(calls.values())} in the rotation)")

    bad = request_for(world, "demo", 3, code(3))
    world.run(bad, settled=True)
    new = world.services.state.module("demo").value.agent.name  # type: ignore[union-attr]
    failed_at = azure_.clock.now()
    run = world.orchestrator.add_run(new, "FAILED", name="broken-run")
    run.started_at = failed_at
    record = world.run(bad)
    serving_again = record.stage("bake").finished_at  # type: ignore[union-attr]
    rollback = (serving_again - failed_at).total_seconds()  # type: ignore[operator]
    poll = float(world.services.settings.worker_poll_seconds)
    print(f"safety-azure: rollback {record.status.value}: {rollback:.1f} s simulated from the failed run to the "
          f"previous revision serving again, against one poll interval ({poll:.0f} s) plus an agent "
          f"start ({online:.0f} s) = {poll + online:.0f} s: {rollback / (poll + online):.2f}x")


# -- real components ----------------------------------------------------------------------------


def wait(check, timeout: float = 300.0) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError("benchmark step did not finish")


def local() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-safety-"))
    dev = None
    services = None
    try:
        with devservices.azurite(work / "azurite") as azurite, \
                devservices.prefect_server(work / "prefect") as api:
            name = f"bench-{uuid.uuid4().hex[:6]}"
            values = {"AzureWebJobsStorage": azurite.connection_string, "PREFECT_API_URL": api,
                      "DEPLOYER_CONFIG_DIGEST_KEY": "bench-key-0123456789abcdef",
                      "DEPLOYER_HOME": str(work / "home"), "DEPLOYER_WORKER_POLL_SECONDS": str(POLL_SECONDS),
                      "DEPLOYER_BAKE_SECONDS": "300", "DEPLOYER_BAKE_RUNS": "1"}
            settings_file = work / "local.settings.json"
            settings_file.write_text(json.dumps({"Values": values}))
            services = build(Settings.from_env(values))
            dev = devservices.dev_host(settings_file, work / "dev.log")

            def deployed(changes: dict[str, str] | None, settled: bool) -> tuple[str, RunRecord]:
                source = write_module(work / "src" / uuid.uuid4().hex[:6], name, demo_files(name, changes))
                uploaded = upload_module(services, source)  # type: ignore[arg-type]

                def done() -> RunRecord | None:
                    got = services.state.run(name, uploaded.request_id)  # type: ignore[union-attr]
                    if got is None:
                        return None
                    status = got.value.status
                    return got.value if (status.settled if settled else status.finished) else None

                return uploaded.request_id, wait(done)

            _, first = deployed(None, settled=False)
            assert first.status is RunStatus.SUCCEEDED, first.error
            # a config change: a new agent and the whole ladder (a code-only change has no ONLINE rung)
            _, good = deployed({".env": "GREETING=two\n"}, settled=True)
            ladder = seconds(good, "wait-online", "commit")
            online = stage_seconds(good, "start-agent") + stage_seconds(good, "check-entrypoints") + \
                stage_seconds(good, "wait-online")
            print(f"safety-local: ladder {ladder:.2f} s from ONLINE to cutover, next to {online:.2f} s for the agent "
                  "to start, load its flows and come ONLINE (target: under 1 s beyond ONLINE)")
            bad_flow = FLOW.replace("    time.sleep(seconds)\n", "    time.sleep(seconds)\n    raise RuntimeError('bad')\n")
            request_id, _ = deployed({"flow.py": bad_flow}, settled=True)
            run_id = prefect_runs.start_run(api, name)
            prefect_runs.wait_state(api, run_id, {"FAILED", "CRASHED", "COMPLETED"}, timeout=120)
            failed_at = datetime.now().astimezone()
            record = wait(lambda: (got := services.state.run(name, request_id)) and  # type: ignore[union-attr]
                          got.value.stage("bake") and got.value.stage("bake").finished_at and got.value)
            serving_again = record.stage("bake").finished_at
            rollback = max((serving_again - failed_at).total_seconds(), 0.0)
            print(f"safety-local: rollback {record.stage('bake').detail.get('outcome')}: {rollback:.2f} s from the "
                  f"failed run to the previous revision serving again, against one poll interval "
                  f"({POLL_SECONDS} s) plus an agent start ({online:.2f} s) = {POLL_SECONDS + online:.2f} s: "
                  f"{rollback / (POLL_SECONDS + online):.2f}x")
    finally:
        try:
            if dev is not None:
                devservices.stop_process(dev, grace=60)  # TERM, then KILL: never left behind
        finally:
            if services is not None:
                for agent in services.runtime.list():  # the agents outlive the host: stop them too
                    services.runtime.stop(agent.name)
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    azure()
    local()


if __name__ == "__main__":
    main()
