"""``promote`` (the revision serving in one environment, into the next: no build), ``approve``
and ``reject`` (a request that waits for its environment's approval)."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.cli import services_for
from deployer.cli.output import emit_json, err, out


def register(sub: Any) -> None:
    p = sub.add_parser("promote", help="deploy the revision serving in one environment into the "
                       "next: same image and code, the target's config, no build")
    p.add_argument("module")
    p.add_argument("--to", metavar="ENV", required=True, help="the environment to promote into")
    p.add_argument("--from", dest="source", metavar="ENV",
                   help="the environment to promote from (default: the one before --to)")
    p.add_argument("--force", action="store_true", help="promote a revision that has not "
                   "succeeded in the source (still baking, failed): recorded in the request")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be promoted and the plan; change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("approve", help="approve a request that waits for its environment's approval")
    p.add_argument("request", help="the request id, or a unique prefix of it (as git takes a commit's)")
    p.add_argument("--comment", default="", help="recorded with the approval")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_approve)

    p = sub.add_parser("reject", help="reject a request that waits for its environment's approval")
    p.add_argument("request", help="the request id, or a unique prefix of it")
    p.add_argument("--reason", required=True, help="why: recorded, in history and told")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_reject)


def cmd_promote(args: argparse.Namespace) -> int:
    from deployer.cli import in_environment
    from deployer.cli.deploy import _user, follow_here, show_plan
    from deployer.request_queue import new_record, submit
    from deployer.revisions.promotion import promotion_request, source_of

    base = services_for(args)
    source = source_of(base, args.to, args.source)
    src, dst = in_environment(base, source), in_environment(base, args.to)
    request = promotion_request(src, dst, args.module, force=args.force, user=_user())
    if args.dry_run:
        from deployer.rotation.dryrun import dry_run_request

        plan = dry_run_request(dst, request)
        plan["promotion"] = {**request.trigger.detail, "to_environment": args.to,
                             "revision": request.revision.id, "image": request.revision.image}
        return show_plan(plan, as_json=args.json)
    if not args.json:
        err.print(f"promoting [bold]{args.module}[/] revision {request.trigger.detail['from_revision']} "
                  f"from {source} to {args.to} (image {request.revision.image}, no build)")
    return follow_here(dst, submit(dst, new_record(request)), as_json=args.json)


def cmd_approve(args: argparse.Namespace) -> int:
    from deployer.cli.deploy import _user, follow_here
    from deployer.pipeline.approvals import approve

    services = services_for(args)
    record = approve(services, args.request, _user(), args.comment)
    if not args.json:
        out.print(f"approved request {record.request_id[:8]} of {record.module} "
                  f"({record.kind.value} into {services.settings.environment_name})", markup=False)
    return follow_here(services, record, as_json=args.json)


def cmd_reject(args: argparse.Namespace) -> int:
    from deployer.cli.deploy import _user
    from deployer.pipeline.approvals import reject

    services = services_for(args)
    record = reject(services, args.request, _user(), args.reason)
    if args.json:
        emit_json(record)
    else:
        out.print(f"rejected request {record.request_id[:8]} of {record.module}: nothing changed "
                  f"in {services.settings.environment_name}", markup=False)
    return 0
