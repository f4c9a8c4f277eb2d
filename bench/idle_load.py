"""Benchmark: what an idle module costs, in money and in Prefect API requests.

Prefect API load is measured. Real ``prefect worker`` processes (one per idle module, its own
pool) run with exactly the settings the deployer gives an agent (``worker_settings``), behind a
counting proxy in front of a local Prefect server, for a window after they settle. Three
configurations run in the same session:

    default   DEPLOYER_WORKER_POLL_SECONDS=10, DEPLOYER_WORKER_HEARTBEAT_SECONDS=30
    azure     30 and 60, what infra/ sets on Azure
    quietest  45 and 90 (a poll must stay under 60 s, or Prefect shows the queue NOT_READY)

It prints the requests per idle module per minute, and what 40 idle modules make of the
smallest Prefect Cloud plan's budget of 625 requests a minute. A run scheduled during the
quietest window is timed to show that a longer poll does not make scheduled runs late: the deployer
fetches runs a poll ahead. The deployer itself calls Prefect for an idle module only when someone
asks (``status``, the dashboard): that is one read of the pool's workers per module and view.

Compute cost is arithmetic from ACI's published list prices (constants below: update them for
your region). An always-on agent costs the same idle or busy. The agent's size is now the
module's own (prefect.yaml ``deployer.agent``), so a right-sized agent is shown next to the
default.

    python bench/idle_load.py [--seconds S] [--modules 3]     (about 7 minutes)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.prefect_proxy import CountingProxy  # noqa: E402
from deployer import devservices  # noqa: E402
from deployer.config import Settings  # noqa: E402
from deployer.rotation.handlers.prepare import worker_settings  # noqa: E402

#: ACI Linux container groups, pay-as-you-go list prices in USD, East US
#: (azure.microsoft.com/pricing/details/container-instances, as last read: 2026). Per second.
VCPU_SECOND = 0.0000113
GB_SECOND = 0.0000012
MONTH_SECONDS = 730 * 3600
#: Prefect Cloud's smallest plan: requests a minute for the whole account
PLAN_BUDGET = 625
CONFIGS = {"default": {"DEPLOYER_WORKER_POLL_SECONDS": "10", "DEPLOYER_WORKER_HEARTBEAT_SECONDS": "30"},
           "azure": {"DEPLOYER_WORKER_POLL_SECONDS": "30", "DEPLOYER_WORKER_HEARTBEAT_SECONDS": "60"},
           "quietest": {"DEPLOYER_WORKER_POLL_SECONDS": "45", "DEPLOYER_WORKER_HEARTBEAT_SECONDS": "90"}}
#: the configuration whose scheduled run is timed: the longest poll
TIMED = "quietest"
SETTLE_SECONDS = 15
FLOW = "from prefect import flow\n\n\n@flow\ndef noop() -> None:\n    pass\n"


def monthly(cpu: float, memory_gb: float) -> float:
    return (cpu * VCPU_SECOND + memory_gb * GB_SECOND) * MONTH_SECONDS


def settings_for(values: dict[str, str]) -> Settings:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
           "DEPLOYER_CONFIG_DIGEST_KEY": "bench-idle-load-key-0123456789",
           "PREFECT_API_URL": "http://127.0.0.1:4200/api", **values}
    return Settings.from_env(env)


def scheduled_deployment(api: str, pool: str, work: Path, at: datetime) -> str:
    """A deployment of a no-op flow on ``pool`` with one run scheduled at ``at``."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.states import Scheduled

    (work / "flow.py").write_text(FLOW)
    with SyncPrefectClient(api) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
        flow_id = client.create_flow_from_name("noop")
        deployment = client.create_deployment(
            flow_id=flow_id, name="noop", entrypoint="flow.py:noop", work_pool_name=pool,
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(work)}}])
        run = client.create_flow_run_from_deployment(deployment, state=Scheduled(scheduled_time=at))
        return str(run.id)


def lateness(api: str, run_id: str) -> float | None:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api) as client:
        run = client.read_flow_run(run_id)  # type: ignore[arg-type]
    if run.start_time is None or run.expected_start_time is None:
        return None
    return (run.start_time - run.expected_start_time).total_seconds()


def measure(api: str, work: Path, label: str, modules: int, seconds: float) -> dict[str, object]:
    env_settings = worker_settings(settings_for(CONFIGS[label]))
    prefect = str(Path(sys.executable).with_name("prefect"))
    workers: list[subprocess.Popen[bytes]] = []
    # the on-time check: its own module, worker and run, talking to Prefect past the proxy so
    # that a run's own traffic is not counted as idle load
    run_id = scheduled_deployment(api, f"{label}-late", work / label, datetime.now(UTC) + timedelta(
        seconds=SETTLE_SECONDS + seconds / 2)) if label == TIMED else ""
    with CountingProxy(api) as proxy:
        try:
            if run_id:
                env = {**devservices.prefect_env(work / f"{label}-home-late", api), **env_settings}
                workers.append(subprocess.Popen(
                    [prefect, "worker", "start", "--pool", f"{label}-late", "--type", "process"],
                    env=env, cwd=work, start_new_session=True, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL))
            for n in range(modules):
                env = {**devservices.prefect_env(work / f"{label}-home-{n}", proxy.url), **env_settings}
                workers.append(subprocess.Popen(
                    [prefect, "worker", "start", "--pool", f"{label}-{n}", "--type", "process",
                     "--name", f"{label}-{n}"], env=env, cwd=work, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(SETTLE_SECONDS)
            proxy.reset()
            time.sleep(seconds)
            counts = dict(proxy.counts)
        finally:
            for worker in workers:
                devservices.stop_process(worker)
    per_minute = sum(counts.values()) / modules / (seconds / 60)
    late = lateness(api, run_id) if run_id else None
    return {"per_minute": per_minute, "counts": counts, "late": late, "settings": env_settings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.0, help="measured window per configuration "
                        "(default: two heartbeats, which is a whole number of polls too)")
    parser.add_argument("--modules", type=int, default=3, help="idle modules (workers) per configuration")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    for label in CONFIGS:
        (work / label).mkdir()
    os.environ.pop("PREFECT_API_URL", None)
    try:
        with devservices.prefect_server(work / "prefect") as api:
            results = {label: measure(api, work, label, args.modules, args.seconds or 2 * float(
                CONFIGS[label]["DEPLOYER_WORKER_HEARTBEAT_SECONDS"])) for label in CONFIGS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for label, r in results.items():
        calls = ", ".join(f"{method} {path.removeprefix('/api')} {n}" for (method, path), n in
                          sorted(r["counts"].items(), key=lambda kv: -kv[1]))  # type: ignore[union-attr]
        per_minute = float(r["per_minute"])  # type: ignore[arg-type]
        print(f"idle-load: {label} ({r['settings']['PREFECT_WORKER_QUERY_SECONDS']} s poll, "  # type: ignore[index]
              f"{r['settings']['PREFECT_WORKER_HEARTBEAT_SECONDS']} s heartbeat): "  # type: ignore[index]
              f"{per_minute:.1f} Prefect API requests per idle module per minute ({calls}); "
              f"40 idle modules {40 * per_minute:.0f}/min = {40 * per_minute / PLAN_BUDGET:.0%} of "
              f"{PLAN_BUDGET}/min")
    default = float(results["default"]["per_minute"])  # type: ignore[arg-type]
    ratios = ", ".join(f"{label} {default / float(results[label]['per_minute']):.1f}x"  # type: ignore[arg-type]
                       for label in CONFIGS if label != "default")
    late = results[TIMED]["late"]
    print(f"idle-load: fewer requests than the default: {ratios}; a run scheduled in the {TIMED} "
          f"window started {late if late is None else f'{late:.1f} s'} after its time "
          f"(prefetch {results[TIMED]['settings']['PREFECT_WORKER_PREFETCH_SECONDS']} s)")  # type: ignore[index]
    settings = settings_for({})
    baseline = monthly(settings.agent_cpu, settings.agent_memory_gb)
    small = monthly(0.5, 1.0)
    print(f"idle-cost: an always-on agent of {settings.agent_cpu:g} vCPU, {settings.agent_memory_gb:g} GB "
          f"(the default) ${baseline:.2f} a month idle or busy; right-sized in prefect.yaml "
          f"(deployer.agent: {{cpu: 0.5, memory: 1}}) ${small:.2f}, {small / baseline:.0%} of it "
          f"(ACI list prices ${VCPU_SECOND:.7f}/vCPU-s, ${GB_SECOND:.7f}/GB-s, East US)")


if __name__ == "__main__":
    main()
