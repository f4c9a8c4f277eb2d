"""``cleanup``: the nightly cleanup, now; ``--dry-run`` prints the plan and changes nothing."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from rich.table import Table

from deployer.cli import services_for
from deployer.cli.output import emit_json, err, out

COLOURS = {"deleted": "green", "planned": "yellow", "kept": "dim", "deferred": "yellow", "failed": "red",
           "anomaly": "bold red"}


def register(sub: Any) -> None:
    p = sub.add_parser("cleanup", help="delete stale agents, image tags, bundles, records and queues "
                                       "(what the nightly timer does)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, with reasons; change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also list what is kept (and why)")
    p.set_defaults(handler=cmd_cleanup)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from deployer.pipeline.cleanup import run_cleanup
    from deployer.services import each_environment

    services = services_for(args)
    # every environment unless --env names one (what they share stays while any one keeps it)
    chosen = [services] if getattr(args, "env", None) else each_environment(services)
    failed = 0
    reports = {}
    for one in chosen:
        if not args.json and not args.dry_run:
            err.print(f"cleaning up {_which(one)}(paced under the delete quota) ...")
        reports[one.settings.environment_name] = report = run_cleanup(one, dry_run=args.dry_run)
        if not args.json:
            failed += _show(args, report, _which(one))
    if args.json:
        emit_json(reports if len(chosen) > 1 else next(iter(reports.values())))
    return 1 if failed else 0


def _which(services: Any) -> str:
    return f"environment {services.settings.environment} " if services.settings.environment else ""


def _show(args: argparse.Namespace, report: Any, which: str) -> int:
    shown = [i for i in report.items if args.all or i.outcome != "kept"]
    if shown:
        table = Table(title=f"{which}cleanup plan (dry run: nothing changed)" if report.dry_run
                      else f"{which}cleanup")
        for column in ("outcome", "kind", "module", "target", "reason"):
            table.add_column(column)
        for item in sorted(shown, key=lambda i: (i.outcome, i.kind, i.module, i.target)):
            reason = f"{item.reason}: {item.error}" if item.error else item.reason
            table.add_row(f"[{COLOURS.get(item.outcome, 'white')}]{item.outcome}[/]", item.kind,
                          item.module, item.target, reason)
        out.print(table)
    counts = Counter(i.outcome for i in report.items)
    out.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to clean up")
    if counts.get("deferred"):
        out.print("deferred items are picked up by the next cleanup", style="dim")
    return counts.get("failed", 0)
