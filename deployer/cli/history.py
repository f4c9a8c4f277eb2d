"""``history`` (every revision of a module, what triggered it, how it went) and ``rollback``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from deployer.cli import services_for
from deployer.cli.output import ago, emit_json, err, out
from deployer.models import RequestStage


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="a module's revisions: trigger, stage timings, outcome, error")
    p.add_argument("module")
    p.add_argument("--limit", type=int, default=20, help="newest N entries (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("rollback", help="redeploy an earlier revision's image (no rebuild)")
    p.add_argument("module")
    p.add_argument("--to", metavar="REVISION", help="revision id or unique prefix (default: the "
                   "last one that succeeded before the current one)")
    p.add_argument("--queue", action="store_true",
                   help="enqueue the request for the function app instead of running it here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_rollback)


def cmd_history(args: argparse.Namespace) -> int:

    services = services_for(args)
    entries = services.state.history(args.module)
    got = services.state.module(args.module)
    current = got.value.request_id if got else ""
    shown = entries[-args.limit:] if args.limit else entries
    recorded = {e.request_id for e in entries}
    # requests not finished yet: queued, waiting for the module, rotating, draining old agents
    runs = services.state.runs(args.module)
    if not entries and not runs and got is None:
        from deployer.cli.status import unknown_module

        raise unknown_module(services, args.module)
    active = [r for r in runs if not r.status.finished and r.request_id not in recorded]
    if args.json:
        emit_json({"module": args.module, "current_request": current, "entries": shown,
                   "in_progress": active})
        return 0
    if not entries and not active:
        out.print(f"no history for {args.module} yet")
        return 0
    table = Table(title=f"history of {args.module} (newest last)")
    for column in ("", "when", "revision", "kind", "trigger", "changed", "path", "outcome", "took",
                   "error"):
        table.add_column(column)
    for entry in shown:
        took = sum(entry.stages.values())
        error = (entry.error or {}).get("message", "")
        table.add_row("●" if entry.request_id == current else "", ago(entry.at), entry.revision.id,
                      entry.kind.value, f"{entry.trigger.source}: {entry.trigger.ref}",
                      ", ".join(entry.changed) or "-", entry.path or "-",
                      entry.outcome.value, f"{took:.0f}s", str(error).splitlines()[0][:60] if error else "")
    for record in active:
        waiting = record.waiting.what if record.waiting else ""
        plan = record.stage(RequestStage.PLAN)
        table.add_row("…", ago(record.created_at), record.revision.id if record.revision else "-",
                      record.kind.value, f"{record.trigger.source}: {record.trigger.ref}",
                      ", ".join(plan.detail.get("changed", [])) if plan else "",
                      str(plan.detail.get("path", "")) if plan else "",
                      record.status.value, "", waiting[:60])
    out.print(table)
    if current:
        out.print(f"● current revision, deployed by request {current}", style="dim")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from deployer.cli.deploy import run_here
    from deployer.pipeline.rollback import rollback_request
    from deployer.request_queue import new_record, submit

    services = services_for(args)
    request = rollback_request(services, args.module, args.to)
    if args.queue:
        submit(services, new_record(request))
        if args.json:
            emit_json({"request_id": request.request_id, "revision": request.revision.id})
        else:
            out.print(f"queued rollback of {args.module} to {request.revision.id} "
                      f"(request {request.request_id})")
        return 0
    if not args.json:
        err.print(f"rolling [bold]{args.module}[/] back to {request.revision.id} (no rebuild)")
    return run_here(services, request, as_json=args.json)
