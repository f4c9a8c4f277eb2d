"""Benchmark: what an idle module costs, in money and in Prefect API requests.

Prefect API load is measured. Real ``prefect worker`` processes (one per idle module, its own
pool) run with exactly the settings the deployer gives an agent (``worker_settings``), behind a
counting proxy in front of a local Prefect server, for a window after they settle. Three
configurations run in the same session:

    default   DEPLOYER_WORKER_POLL_SECONDS=10, DEPLOYER_WORKER_HEARTBEAT_SECONDS=30
    azure     30 and 60, what infra/ sets on Azure
    quietest  45 and 90 (a poll must stay under 60 s, or Prefect shows the queue NOT_READY)

It prints the requests per idle module per minute, and what 40 idle modules make of the
smallest Prefect Cloud plan's budget of 625 requests a minute.

A fourth configuration, ``run``, is modules with ``isolation: run``: no worker at all; 40 idle
modules (pools, per-run queues, deployments) and the dispatcher (``deployer.pipeline.per_run``)
ticking every 10 s, as infra/ schedules it, through the same proxy. A run scheduled during the
quietest window is timed to show that a longer poll does not make scheduled runs late: the deployer
fetches runs a poll ahead. The deployer itself calls Prefect for an idle module only when someone
asks (``status``, the dashboard): that is one read of the pool's workers per module and view.

Compute cost is arithmetic from ACI's published list prices (constants below: update them for
your region). An always-on agent costs the same idle or busy. With ``isolation: run`` a module
pays its runs' containers while they run (plus their start) and a share of the dispatcher's
executions on the Flex Consumption plan (the tick's duration is measured here). The agent's size is now the
module's own (prefect.yaml ``deployer.agent``), so a right-sized agent is shown next to the
default.

    python bench/idle_load.py [--seconds S] [--modules 3]     (about 9 minutes)
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
#: Azure Functions Flex Consumption, on-demand, East US (azure.microsoft.com/pricing/details/
#: functions, as last read: 2026): execution time per GB-second of instance memory, and per
#: execution; the monthly free grants are left out (a conservative figure)
FLEX_GB_SECOND = 0.000026
FLEX_EXECUTION = 0.40 / 1_000_000
FLEX_INSTANCE_GB = 2.048  # the app's instance memory (infra/: 2048 MB)
#: a run's container is billed from its image pull to its end: the start, as assumed here
RUN_START_SECONDS = 60
#: the dispatcher's schedule on Azure (DEPLOYER_DISPATCH_SCHEDULE in infra/)
DISPATCH_SECONDS = 10
RUN_MODULES = 40
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


def measure_per_run(api: str, work: Path, modules: int, seconds: float) -> dict[str, object]:
    """``isolation: run``: idle modules have deployments on per-run queues and no worker; the
    dispatcher ticks every ``DISPATCH_SECONDS`` for all of them, through the proxy."""
    from deployer.adapters.local_agents import LocalAgentRuntime
    from deployer.adapters.prefect_orchestrator import PrefectOrchestrator
    from deployer.bootstrap import AppServices
    from deployer.bundle.prefect_yaml import DeploymentSpec
    from deployer.models import PER_RUN_QUEUE, ModuleState, Revision
    from deployer.pipeline.per_run import tick
    from deployer.state import StateRepository
    from tests.fakes.documents import MemoryDocumentStore
    from tests.fakes.platform import FakeBundleStore, FakeQueue

    state = StateRepository(MemoryDocumentStore())
    setup = PrefectOrchestrator(api)
    try:
        for n in range(modules):
            pool = f"run-{n}"
            setup.ensure_pool(pool)
            setup.ensure_queue(pool, PER_RUN_QUEUE)
            spec = DeploymentSpec(name="noop", entrypoint="flow.py:noop", line=1,
                                  config={"name": "noop"}, flow_name=f"noop-{n}", parameter_schema={})
            setup.register(pool, PER_RUN_QUEUE, [spec], [], "rev-1", image="registry/run:1")
            # the installation's own modules: the dispatcher serves their pools only
            state.save_module(ModuleState(pool, Revision(pool, f"sha256:{n:064x}", f"sha256:{n:064x}",
                                                         isolation="run")), None)
    finally:
        setup.close()
    durations: list[float] = []
    with CountingProxy(api) as proxy:
        services = AppServices(settings_for({"PREFECT_API_URL": proxy.url}), state, FakeBundleStore(),
                               FakeQueue(lambda: datetime.now(UTC)),
                               runtime=LocalAgentRuntime(work / "run-home"),
                               orchestrator=PrefectOrchestrator(proxy.url))
        tick(services)  # the client's first connection, as a warm instance has it
        proxy.reset()
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            started = time.monotonic()
            tick(services)
            durations.append(time.monotonic() - started)
            time.sleep(max(0.0, DISPATCH_SECONDS - (time.monotonic() - started)))
        counts = dict(proxy.counts)
    per_minute = sum(counts.values()) / modules / (seconds / 60)
    return {"per_minute": per_minute, "counts": counts, "late": None, "modules": modules,
            "tick_seconds": sorted(durations)[len(durations) // 2] if durations else 0.0,
            "settings": {"PREFECT_WORKER_QUERY_SECONDS": "-", "PREFECT_WORKER_HEARTBEAT_SECONDS": "-"}}


def per_run_costs(tick_seconds: float, modules: int, cpu: float, memory_gb: float) -> dict[str, float]:
    """A month of ``isolation: run``: the dispatcher (Flex executions, shared by ``modules``)
    and a module that runs one hour a day in one run (its container, its start included)."""
    ticks = MONTH_SECONDS / DISPATCH_SECONDS
    dispatcher = ticks * (tick_seconds * FLEX_INSTANCE_GB * FLEX_GB_SECOND + FLEX_EXECUTION)
    days = MONTH_SECONDS / 86400
    hour_a_day = days * (3600 + RUN_START_SECONDS) * (cpu * VCPU_SECOND + memory_gb * GB_SECOND)
    return {"dispatcher": dispatcher, "idle": dispatcher / modules,
            "hour_a_day": hour_a_day + dispatcher / modules}


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
            per_run = measure_per_run(api, work, RUN_MODULES, args.seconds or 120.0)
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
    calls = ", ".join(f"{method} {path.removeprefix('/api')} {n}" for (method, path), n in
                      sorted(per_run["counts"].items(), key=lambda kv: -kv[1]))  # type: ignore[union-attr]
    run_minute = float(per_run["per_minute"])  # type: ignore[arg-type]
    azure = float(results["azure"]["per_minute"])  # type: ignore[arg-type]
    print(f"idle-load: run (isolation: run, no worker; the dispatcher every {DISPATCH_SECONDS} s for "
          f"{RUN_MODULES} idle modules): {run_minute:.2f} Prefect API requests per idle module per "
          f"minute ({calls}); 40 idle modules {40 * run_minute:.0f}/min = "
          f"{40 * run_minute / PLAN_BUDGET:.1%} of {PLAN_BUDGET}/min; {azure / run_minute:.0f}x fewer "
          f"than agents on Azure's settings; a tick takes {float(per_run['tick_seconds']) * 1000:.0f} ms "  # type: ignore[arg-type]
          "(median)")
    settings = settings_for({})
    baseline = monthly(settings.agent_cpu, settings.agent_memory_gb)
    costs = per_run_costs(float(per_run["tick_seconds"]), RUN_MODULES,  # type: ignore[arg-type]
                          settings.agent_cpu, settings.agent_memory_gb)
    print(f"idle-cost: isolation: run, a module of {settings.agent_cpu:g} vCPU, "
          f"{settings.agent_memory_gb:g} GB runs: idle ${costs['idle']:.2f} a month (its share of the "
          f"dispatcher's ${costs['dispatcher']:.2f} among {RUN_MODULES} modules); running one hour a day "
          f"${costs['hour_a_day']:.2f} a month = {costs['hour_a_day'] / baseline:.1%} of its always-on agent's "
          f"${baseline:.2f} (target: at most 15%; a run's start counted as {RUN_START_SECONDS} s; Flex "
          f"${FLEX_GB_SECOND}/GB-s of {FLEX_INSTANCE_GB:g} GB and ${FLEX_EXECUTION * 1e6:.2f}/million "
          "executions, free grants left out)")
    small = monthly(0.5, 1.0)
    print(f"idle-cost: an always-on agent of {settings.agent_cpu:g} vCPU, {settings.agent_memory_gb:g} GB "
          f"(the default) ${baseline:.2f} a month idle or busy; right-sized in prefect.yaml "
          f"(deployer.agent: {{cpu: 0.5, memory: 1}}) ${small:.2f}, {small / baseline:.0%} of it "
          f"(ACI list prices ${VCPU_SECOND:.7f}/vCPU-s, ${GB_SECOND:.7f}/GB-s, East US)")


if __name__ == "__main__":
    main()
