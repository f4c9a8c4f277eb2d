"""``run``: start a run of a deployed flow on the deployer's Prefect API and, with ``--watch``,
print its states and log lines until it ends (exit 1 unless it completed)."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.cli import seconds, services_for
from deployer.cli.output import emit_json, err, out
from deployer.urls import mask


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="start a run of a deployed flow (--watch: follow it to its end)")
    p.add_argument("target", metavar="MODULE[/DEPLOYMENT]",
                   help="the module (its one deployment), or module/deployment")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a flow parameter; VALUE is JSON when it parses (3, true, [1,2]), else "
                   "text; repeat for more")
    p.add_argument("-w", "--watch", action="store_true",
                   help="print the run's states and logs until it ends; exit 1 unless it completes")
    p.add_argument("--timeout", type=seconds, metavar="SECONDS",
                   help="with --watch: stop watching after SECONDS (the run goes on; exit 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from deployer.pipeline.flow_runs import parse_parameters, start, target

    parameters = parse_parameters(args.param)
    services = services_for(args)
    where = target(services, args.target)
    run = start(services, where, parameters)
    api = mask(services.settings.prefect_api_url)
    if not args.watch:
        if args.json:
            emit_json({"run": run, "target": where, "parameters": parameters})
            return 0
        out.print(f"started flow run {run.name} ({run.id}) of {where.module}/{where.deployment}, "
                  f"revision {where.revision or '-'}", markup=False)
        out.print(f"  follow it: PREFECT_API_URL={api} prefect flow-run logs {run.id}", markup=False,
                  style="dim")
        return 0
    return _watch(services, args, where, run)


def _watch(services: Any, args: argparse.Namespace, where: Any, run: Any) -> int:
    from deployer.pipeline.flow_runs import final, stopped_over_limit, watch
    from deployer.ports.orchestrator import FINAL_STATES

    if not args.json:
        out.print(f"flow run {run.name} ({run.id}) of {where.module}/{where.deployment}, revision "
                  f"{where.revision or '-'}", markup=False)
    logs: list[Any] = []
    started = services.now()
    try:
        for event in watch(services, run.id, timeout=args.timeout):
            if event.moved is not None:
                run = event.moved
            if args.json:
                logs.extend([event.log] if event.log else [])
                continue
            clock = event.at.strftime("%H:%M:%S UTC")
            if event.moved is not None:
                out.print(f"{clock}  the deployment moved to revision {run.version} before the run "
                          f"started: it was re-created at that revision ({run.id}); following it",
                          markup=False)
            elif event.log is None:
                out.print(f"{clock}  [bold]{event.state}[/]")
            else:
                out.print(f"{clock}  {event.log.level:<8} ", end="", markup=False)
                out.print(event.log.message, markup=False)
    except KeyboardInterrupt:
        err.print(f"stopped watching; the run goes on: {run.id}")
        return 130
    ended = final(services, run.id)
    took = (services.now() - started).total_seconds()
    done = ended.state == "COMPLETED"
    over = stopped_over_limit(services, where.module, run.id, ended.message) \
        if ended.state == "CRASHED" else None
    if args.json:
        emit_json({"run": ended, "target": where, "logs": logs, "completed": done,
                   "over_memory_limit": over})
    elif ended.state not in FINAL_STATES:
        err.print(f"still {ended.state} after {took:.0f} s (--timeout); the run goes on: {ended.id}")
    else:
        why = f": {ended.message}" if ended.message and not done else ""
        if over is not None:
            why = (f": stopped by {over.get('by', 'its agent')}, it used "
                   f"{over['used'] / 1024**3:.2f} GB, more than the "
                   f"memory limit of {where.deployment} ({over['limit'] / 1024**3:g} GB, "
                   "work_pool.job_variables.memory in prefect.yaml)")
        (out if done else err).print(f"flow run {ended.name}: {ended.state} after {took:.1f} s{why}",
                                     markup=False)
    return 0 if done else 1
