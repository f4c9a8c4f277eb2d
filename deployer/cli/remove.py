"""``remove``: take a module out of service (agents, deployments, queues); history stays."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.cli import services_for
from deployer.cli.output import emit_json, out


def register(sub: Any) -> None:
    p = sub.add_parser(
        "remove", help="stop a module's agents and remove its Prefect deployments and work queues; "
        "its history, bundles and images stay until cleanup's rules say otherwise",
        epilog="example: deployer remove finance --dry-run, then deployer remove finance")
    p.add_argument("module")
    p.add_argument("--dry-run", action="store_true", help="print what would go; change nothing")
    p.add_argument("--force", action="store_true",
                   help="also when flow runs are in flight (they end, marked crashed)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_remove)


def cmd_remove(args: argparse.Namespace) -> int:
    from deployer.pipeline.remove import remove_module

    services = services_for(args)
    from deployer.cli.deploy import _user

    removal = remove_module(services, args.module, dry_run=args.dry_run, force=args.force,
                            user=_user())
    if args.json:
        emit_json(removal)
        return 0
    verb = "would stop" if removal.dry_run else "stopped"
    out.print(f"{'dry run: ' if removal.dry_run else ''}{removal.module}: {verb} "
              f"{len(removal.agents)} agent(s) {', '.join(removal.agents)}", markup=False)
    out.print(f"  deployments {'to remove' if removal.dry_run else 'removed'}: "
              f"{', '.join(removal.deployments) or 'none'}", markup=False)
    out.print(f"  work queues {'to delete' if removal.dry_run else 'deleted'}: "
              f"{', '.join(removal.queues) or 'none'}", markup=False)
    if removal.crashed:
        what = "in flight (remove refuses without --force)" if removal.dry_run else "marked crashed"
        out.print(f"  flow runs {what}: {', '.join(removal.crashed)}", markup=False)
    out.print(f"  kept: {removal.kept}", markup=False)
    if not removal.dry_run:
        out.print(f"  removal {removal.request_id}: a request made before it (an upload still on "
                  "its way, say) does not bring the module back; a new upload or `deployer "
                  "deploy` does", markup=False)
    return 0
