"""Benchmark: upload -> agent ONLINE -> first flow run COMPLETED on the local backend, through
the trigger path (Azurite, `deployer dev`, a Prefect server), next to the sum of its irreducible
parts measured in the same run on the same machine:

    venv     uv venv + uv pip install --compile-bytecode -r requirements.txt (warm uv cache)
    online   prefect worker start -> the worker shows ONLINE in the Prefect API
    run      one flow run on an ONLINE worker, created -> COMPLETED

and a no-op redeploy (the same bundle again): its time, builds and agent starts.
Targets: within 1.5x of the irreducible sum; no-op at most 0.5 s with 0 builds and 0 starts.
Printed, never asserted.

    python bench/local_deploy.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer import devservices  # noqa: E402
from deployer.adapters.local_build import uv_binary  # noqa: E402
from deployer.adapters.prefect_orchestrator import PrefectOrchestrator  # noqa: E402
from deployer.bootstrap import build  # noqa: E402
from deployer.bundle import BundleLimits, load_folder  # noqa: E402
from deployer.config import Settings  # noqa: E402
from deployer.models import Intent, Request, RequestKind, Trigger  # noqa: E402
from deployer.pipeline.upload import upload_module  # noqa: E402
from deployer.request_queue import new_record, submit  # noqa: E402
from deployer.rotation.drive import drive  # noqa: E402
from tests.builders import write_module  # noqa: E402
from tests.e2e.harness import demo_files  # noqa: E402

POLL = 0.05
POLL_SECONDS = "1"  # agents' PREFECT_WORKER_QUERY_SECONDS, in both measurements


def wait(check, timeout: float = 300.0) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(POLL)
    raise TimeoutError("benchmark step did not finish")


def finished_record(services, module: str, request_id: str):  # type: ignore[no-untyped-def]
    """Wait until the trigger path has finished the request; its run record."""
    def done() -> bool:
        got = services.state.run(module, request_id)
        return got is not None and got.value.status.finished

    wait(done)
    return services.state.run(module, request_id).value


def run_here(services, request):  # type: ignore[no-untyped-def]
    """The request driven in this process, as `deployer deploy` does."""
    submit(services, new_record(request))
    return drive(services, request.module, request.request_id, until=lambda r: r.status.finished)


def irreducible(work: Path, module_root: Path, api: str) -> dict[str, float]:
    uv = uv_binary()
    venv = work / "venv"
    start = time.perf_counter()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python",
                    str(venv / "bin" / "python"), "-r", str(module_root / "requirements.txt")],
                   check=True)
    venv_s = time.perf_counter() - start

    name = module_root.name
    orch = PrefectOrchestrator(api)
    orch.ensure_pool(name)
    orch.ensure_queue(name, "bench")
    module = load_folder(module_root, BundleLimits())
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(module_root)}}]
    orch.register(name, "bench", module.deployments, pull, "bench")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
           "PREFECT_API_URL": api, "PREFECT_HOME": str(work / "ph"),
           "PREFECT_WORKER_QUERY_SECONDS": POLL_SECONDS}
    worker_name = f"bench-worker-{uuid.uuid4().hex[:6]}"  # never one a previous round left ONLINE
    start = time.perf_counter()
    worker = subprocess.Popen([str(venv / "bin" / "python"), "-m", "prefect", "worker", "start",
                               "--pool", name, "--name", worker_name, "--work-queue", "bench",
                               "--type", "process"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        online_s = time.perf_counter() - start + wait(lambda: worker_name in orch.online_workers(name))
        start = time.perf_counter()
        run = orch.start_run(name, "hello")
        run_s = wait(lambda: orch.run_status(run.id).state in ("COMPLETED", "FAILED", "CRASHED"))
        assert orch.run_status(run.id).state == "COMPLETED"
    finally:
        devservices.stop_process(worker, grace=30)  # TERM, then KILL: never left behind
        orch.register(name, "bench", [], pull, "bench")  # drop the bench deployment
        orch.close()
    return {"venv": venv_s, "online": online_s, "run": run_s}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    try:
        with devservices.azurite(work / "azurite") as azurite, \
                devservices.prefect_server(work / "prefect") as api:
            warm = write_module(work / "warm", "bench-warm", demo_files("bench-warm"))
            # warm the uv cache the way a previous build would have
            irreducible(work / "warmup", warm, api)

            parts = irreducible(work / "irreducible", warm, api)

            name = f"bench-{uuid.uuid4().hex[:6]}"
            values = {"AzureWebJobsStorage": azurite.connection_string, "PREFECT_API_URL": api,
                      "DEPLOYER_CONFIG_DIGEST_KEY": "bench-key-0123456789abcdef",
                      "DEPLOYER_HOME": str(work / "home"), "DEPLOYER_WORKER_POLL_SECONDS": POLL_SECONDS}
            settings_file = work / "local.settings.json"
            settings_file.write_text(json.dumps({"Values": values}))
            services = build(Settings.from_env(values))
            source = write_module(work / "src", name, demo_files(name))
            dev = devservices.dev_host(settings_file, work / "dev.log")
            try:
                time.sleep(3)  # the host imports and starts its listeners
                start = time.perf_counter()
                uploaded = upload_module(services, source)
                record = finished_record(services, name, uploaded.request_id)
                to_online = time.perf_counter() - start
                assert record.status.value == "succeeded", record.error
                run = services.orchestrator.start_run(name, "hello")
                final = ("COMPLETED", "FAILED", "CRASHED")
                wait(lambda: services.orchestrator.run_status(run.id).state in final)
                to_completed = time.perf_counter() - start
                stages = {s.name: s.seconds for s in record.stages if s.seconds is not None}

                # no-op: the same bundle again, through the trigger path ...
                agents_before = [a.name for a in services.runtime.list(name)]
                start = time.perf_counter()
                again = upload_module(services, source)
                noop = finished_record(services, name, again.request_id)
                noop_trigger = time.perf_counter() - start
                # ... and the pipeline alone, in this (warm) process
                request = Request(Request.make_id("bench", str(time.time())), RequestKind.DEPLOY, name,
                                  Trigger("cli", again.blob, {"blob": again.blob, "etag": again.etag}),
                                  again.revision, services.now(), Intent(services.now()))
                run_here(services, request)  # warm the clients once
                request = Request(Request.make_id("bench", str(time.time())), RequestKind.DEPLOY, name,
                                  Trigger("cli", again.blob, {"blob": again.blob, "etag": again.etag}),
                                  again.revision, services.now(), Intent(services.now()))
                start = time.perf_counter()
                inproc = run_here(services, request)
                noop_pipeline = time.perf_counter() - start
                builds = sum(1 for s in noop.stages + inproc.stages if s.name == "build")
                starts = sum(1 for s in noop.stages + inproc.stages if s.name == "start-agent")
                same_agents = [a.name for a in services.runtime.list(name)] == agents_before
            finally:
                try:
                    devservices.stop_process(dev, grace=60)  # TERM, then KILL: never left behind
                finally:
                    for agent in services.runtime.list():  # agents outlive the host
                        services.runtime.stop(agent.name)

        online_parts = parts["venv"] + parts["online"]
        all_parts = online_parts + parts["run"]
        print(f"local-deploy: irreducible venv install {parts['venv']:.2f} s, worker start->ONLINE "
              f"{parts['online']:.2f} s, one flow run {parts['run']:.2f} s")
        print(f"local-deploy: upload -> agent ONLINE   {to_online:6.2f} s  vs {online_parts:.2f} s "
              f"irreducible: {to_online / online_parts:.2f}x (target <= 1.5x)")
        print(f"local-deploy: upload -> run COMPLETED  {to_completed:6.2f} s  vs {all_parts:.2f} s "
              f"irreducible: {to_completed / all_parts:.2f}x (target <= 1.5x)")
        print("local-deploy: pipeline stages " + ", ".join(f"{k} {v:.2f}s" for k, v in stages.items()))
        print(f"local-deploy: no-op redeploy via trigger {noop_trigger:.2f} s (status {noop.status.value}); "
              f"pipeline alone {noop_pipeline:.3f} s (status {inproc.status.value}) (target <= 0.5 s)")
        print(f"local-deploy: no-op builds {builds}, agent starts {starts}, same agents {same_agents} "
              "(target 0 and 0)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
