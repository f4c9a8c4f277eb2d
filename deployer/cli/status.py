"""``status``: per module, the current revision, its agent and worker, and the last run."""

from __future__ import annotations

import argparse
from typing import Any

from rich import box
from rich.table import Table

from deployer.cli import seconds, services_for
from deployer.cli.output import ago, emit_json, err, out
from deployer.names import unknown_module


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="what the deployer knows: revisions, agents, last runs")
    p.add_argument("module", nargs="?", help="only this module")
    p.add_argument("-w", "--watch", nargs="?", type=seconds, const=2.0, default=None, metavar="SECONDS",
                   help="show it again every SECONDS (default 2) until Ctrl-C; JSON: a line each")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from deployer.pipeline.status import module_statuses

    services = services_for(args)
    if services.settings.environments and not getattr(args, "env", None) and args.watch is None:
        return show_matrix(services, args)  # every environment at once; --env: one in full
    statuses = module_statuses(services, args.module)
    if args.module and not statuses:
        raise unknown_module(services, args.module)
    if args.watch is not None:
        return watch(services, args, statuses)
    if args.json:
        emit_json({"modules": statuses})
        return 0
    if not statuses:
        out.print("no modules yet: `deployer upload flows/<module>` deploys one")
        return 0
    out.print(render(statuses))
    for line in activity(statuses):
        out.print(line, markup=False, soft_wrap=False)
    for what in dict.fromkeys(w for s in statuses for w in s.unreachable):  # once each
        err.print(f"[yellow]note:[/] shown as unknown: {what}")
    out.print("a request's stages: `deployer logs <module> --request <id>`; every revision: "
              "`deployer history <module>`", style="dim", soft_wrap=False)
    from deployer.pipeline.cleanup import last_report

    report = last_report(services)
    if report is not None:
        out.print(f"last cleanup {report.report_id}: {report.count('deleted')} deleted, "
                  f"{report.count('kept')} kept, {report.count('deferred')} deferred, "
                  f"{report.count('failed')} failed (`deployer cleanup --dry-run` shows the next)",
                  soft_wrap=False)
    return 0


def show_matrix(services: Any, args: argparse.Namespace) -> int:
    """A module x environment table: what serves where, since when, what waits for approval,
    how far each environment is behind the one before it."""
    from deployer.pipeline.matrix import matrix

    names, rows = matrix(services)
    if args.module:
        rows = [r for r in rows if r.module == args.module]
        if not rows:
            raise unknown_module(services, args.module)
    if args.json:
        emit_json({"environments": names, "modules": rows})
        return 0
    table = Table(title="modules x environments", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("module")
    for name in names:
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(row.module, *(_cell(row.cells[n]) for n in names))
    out.print(table)
    out.print("one environment in full: `deployer --env <env> status`; promote: "
              "`deployer promote <module> --to <env>`", style="dim", soft_wrap=False)
    return 0


def _cell(cell: Any) -> str:
    lines = [cell.revision or "-"]
    if cell.since is not None:
        lines.append(f"[dim]{ago(cell.since)}, {cell.outcome or '-'}[/]")
    if cell.behind:
        lines.append(f"[yellow]{cell.behind} behind {cell.behind_of}[/]")
    elif cell.behind == 0 and cell.revision:
        lines.append(f"[green]as {cell.behind_of}[/]")
    if cell.awaiting_approval:
        lines.append(f"[yellow]awaiting approval: {', '.join(r[:8] for r in cell.awaiting_approval)}[/]")
    return "\n".join(lines)


def watch(services: Any, args: argparse.Namespace, statuses: list[Any]) -> int:
    """The status again every ``--watch`` seconds until Ctrl-C: redrawn in place for people,
    one JSON document per line for machines."""
    import json
    import sys
    import time

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from deployer import codec
    from deployer.pipeline.status import module_statuses

    def view(current: list[Any]) -> Any:
        return Group(render(current), *(Text(line) for line in activity(current))) \
            if current else Text("no modules yet")

    interval = max(float(args.watch), 0.5)
    try:
        if args.json:
            while True:
                sys.stdout.write(json.dumps(codec.to_data({"modules": statuses}), sort_keys=True) + "\n")
                sys.stdout.flush()
                time.sleep(interval)
                statuses = module_statuses(services, args.module)
        with Live(view(statuses), console=out, refresh_per_second=4) as live:
            while True:
                time.sleep(interval)
                live.update(view(module_statuses(services, args.module)))
    except KeyboardInterrupt:
        return 0


def render(statuses: list[Any]) -> Table:
    """Fits 100 columns: names and ids whole (``logs --agent``, ``logs --request`` take them),
    a revision's age and request under it, an agent's role under its name."""
    table = Table(title="modules", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("module", "revision", "agent", "worker", "last request", "outcome"):
        table.add_column(column, no_wrap=column != "module")
    for status in statuses:
        state, run = status.state, status.last_run
        current = state.current if state else None
        agents = status.agents or [None]
        for index, agent in enumerate(agents):
            first = index == 0
            name = "-"
            if agent is not None:
                name = agent.agent.name + ("" if agent.current else f"\n[dim]{agent.role or 'old'}[/]")
            elif status.per_run:  # no agent: the dispatcher gives each run a container
                name = f"a container per run\n[dim]{status.containers} running[/]"
            revision = (f"{current.id}\n[dim]{ago(state.updated_at)}, by {state.request_id[:8]}[/]"
                        if current and state else "-")
            worker = "-"
            if agent is not None:
                worker = _worker(agent.worker) if agent.agent.state.value == "running" else \
                    f"[red]{agent.agent.state.value}[/]"
            table.add_row(
                status.module if first else "",
                revision if first else "",
                name,
                worker,
                (f"{run.request_id[:8]}\n[dim]{ago(run.created_at)}[/]" if run else "-") if first else "",
                (_outcome(run.status.value) if run else "-") if first else "",
            )
    return table


def activity(statuses: list[Any]) -> list[str]:
    """One line per request in progress: what it does or waits for, and when it looks again."""
    lines = []
    for status in statuses:
        for record in status.active:
            line = (f"{status.module}: request {record.request_id[:8]} ({record.kind.value}) is "
                    f"{record.status.value}")
            if record.waiting is not None:
                line += f": {record.waiting.what}"
                if record.waiting.next_look_at is not None:
                    line += f" (next look {ago(record.waiting.next_look_at)})"
            lines.append(line)
        state = status.state
        if status.code == "damaged" and state is not None and state.current is not None:
            lines.append(f"{status.module}: the code store's copy of revision {state.current.id} is "
                         f"not its code ({'; '.join(status.code_problems[:3])}): every run of it "
                         "refuses to start. Upload the same bundle again, or `deployer deploy "
                         f"--repair flows/{status.module}`, to publish it again")
        if state is not None and state.baking is not None:
            baking = state.baking
            lines.append(f"{status.module}: revision {baking.revision_id} is baking until "
                         f"{baking.until:%Y-%m-%d %H:%M:%S} UTC (or {baking.runs} finished runs); "
                         f"agent {baking.previous_agent} stays ready to take over")
        for refused in state.refused if state else ():
            lines.append(f"{status.module}: revision {refused.revision_id} was rolled back on its "
                         f"own {ago(refused.at)}: {refused.reason}; only an explicit deploy or "
                         "rollback brings it back")
        for draining in state.draining if state else ():
            lines.append(f"{status.module}: agent {draining.name} is draining since "
                         f"{ago(draining.since)} (deadline {draining.deadline:%Y-%m-%d %H:%M} UTC)")
    return lines


def _worker(status: str) -> str:
    return {"ONLINE": "[green]ONLINE[/]", "OFFLINE": "[red]OFFLINE[/]"}.get(status, status)


def _outcome(status: str) -> str:
    colour = {"succeeded": "green", "noop": "green", "failed": "red", "rejected": "red",
              "running": "yellow", "queued": "yellow", "waiting": "yellow", "draining": "cyan",
              "baking": "cyan", "superseded": "dim", "rolled_back": "red"}.get(status, "white")
    return f"[{colour}]{status}[/]"
