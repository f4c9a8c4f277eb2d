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

    services = services_for(args)
    if not args.json and not args.dry_run:
        err.print("cleaning up (paced under the delete quota) ...")
    report = run_cleanup(services, dry_run=args.dry_run)
    if args.json:
        emit_json(report)
        return 0
    shown = [i for i in report.items if args.all or i.outcome != "kept"]
    if shown:
        table = Table(title="cleanup plan (dry run: nothing changed)" if report.dry_run else "cleanup")
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
    return 1 if counts.get("failed") else 0
