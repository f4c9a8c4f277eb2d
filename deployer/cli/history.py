"""``history`` (every revision of a module, what triggered it, how it went) and ``rollback``."""

from __future__ import annotations

import argparse
from typing import Any

from rich import box
from rich.table import Table

from deployer.cli import count, services_for
from deployer.cli.output import ago, emit_json, err, out
from deployer.models import RequestStage
from deployer.rotation.ending import live_after
from deployer.rotation.operations import Bake


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="a module's revisions: trigger, stage timings, outcome, error")
    p.add_argument("module")
    p.add_argument("--limit", type=count(0), default=20, help="newest N entries (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("rollback", help="redeploy an earlier revision's image (no rebuild)")
    p.add_argument("module")
    p.add_argument("--to", metavar="REVISION", help="revision id or unique prefix (default: the "
                   "last one that succeeded before the current one)")
    p.add_argument("--queue", action="store_true",
                   help="enqueue the request for the function app instead of running it here")
    p.add_argument("--dry-run", action="store_true",
                   help="print the revision it would go back to and the plan; change nothing")
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
        from deployer.names import unknown_module

        raise unknown_module(services, args.module)
    active = [r for r in runs if not r.status.finished and r.request_id not in recorded]
    if args.json:
        emit_json({"module": args.module, "current_request": current, "entries": shown,
                   "in_progress": active})
        return 0
    if not entries and not active:
        out.print(f"no history for {args.module} yet")
        return 0
    # fits 100 columns: the request by its short id (what `logs --request` takes), the change by
    # its path, the time split into "live after" and the bake window that followed; what
    # triggered each and why one failed below the table, whole, wrapped at words
    table = Table(title=f"history of {args.module} (newest last)", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for column in ("", "when", "revision", "request", "kind", "path", "outcome", "live", "baked"):
        table.add_column(column, no_wrap=True)
    notes = []
    for entry in shown:
        error = _why(entry.error)
        table.add_row("●" if entry.request_id == current else "", ago(entry.at), entry.revision.id,
                      entry.request_id[:SHORT_ID], entry.kind.value, entry.path or "-",
                      _outcome(entry.outcome.value), _seconds(entry.live_after),
                      _seconds(entry.stages.get(Bake.kind)))
        notes.append(f"{entry.request_id[:SHORT_ID]}  {_trigger(entry.trigger)}"
                     + (f": {error}" if error else ""))
    for record in active:
        waiting = record.waiting.what if record.waiting else ""
        plan = record.stage(RequestStage.PLAN)
        mark = "●" if record.request_id == current else "…"  # serving (baking, say), or not yet
        table.add_row(mark, ago(record.created_at), record.revision.id if record.revision else "-",
                      record.request_id[:SHORT_ID], record.kind.value,
                      str(plan.detail.get("path", "")) if plan else "",
                      record.status.value, _seconds(live_after(record)), "")
        notes.append(f"{record.request_id[:SHORT_ID]}  {_trigger(record.trigger)}"
                     + (f": {waiting}" if waiting else ""))
    out.print(table)
    for note in notes:
        out.print(note, markup=False, soft_wrap=False)
    if current:
        out.print(f"● current revision, deployed by request {current[:SHORT_ID]}; … in progress; "
                  f"`deployer logs {args.module} --request <id>` shows a request's stages", style="dim",
                  soft_wrap=False)
    return 0


#: request ids are shown by their first characters (``logs --request`` takes any unique prefix)
SHORT_ID = 8


def _why(error: dict[str, Any] | None) -> str:
    """A failure in a line: its message, and its first problem (with file and line) if any."""
    if not error:
        return ""
    why = str(error.get("message", "")).splitlines()[0] if error.get("message") else ""
    problems = [p for p in error.get("problems") or [] if isinstance(p, dict)]
    if problems:
        where = ":".join(str(p) for p in (problems[0].get("file"), problems[0].get("line")) if p)
        why = f"{why} {where}: {problems[0].get('message', '')}".strip()
    return why


def _outcome(value: str) -> str:
    colour = {"succeeded": "green", "failed": "red", "rejected": "red", "rolled_back": "yellow",
              "removed": "yellow", "superseded": "dim"}.get(value, "")
    return f"[{colour}]{value}[/]" if colour else value


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


def _trigger(trigger: Any) -> str:
    who = trigger.detail.get("user")
    ref = trigger.ref.split("@", 1)[0]  # a blob's name without its etag
    return f"{trigger.source}: {ref}" + (f" by {who}" if who else "")


def cmd_rollback(args: argparse.Namespace) -> int:
    from deployer.cli.deploy import run_here
    from deployer.pipeline.rollback import rollback_request
    from deployer.request_queue import new_record, submit

    services = services_for(args)
    request = rollback_request(services, args.module, args.to)
    if args.dry_run:
        from deployer.cli.deploy import show_plan
        from deployer.rotation.dryrun import dry_run_request

        return show_plan(dry_run_request(services, request), as_json=args.json)
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
