"""``logs``: an agent's recent output, or a request's stages and error."""

from __future__ import annotations

import argparse
from typing import Any

from deployer.cli import count, services_for
from deployer.cli.output import ago, emit_json, out
from deployer.errors import NotFound


def register(sub: Any) -> None:
    p = sub.add_parser("logs", help="the current agent's recent output, or a request's stages")
    p.add_argument("module")
    p.add_argument("--agent", help="this agent instead of the module's current one")
    p.add_argument("--request", help="show this request's stages, plan and error instead")
    p.add_argument("--tail", type=count(1), default=100, help="lines of agent output (default 100)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing the agent's new output until Ctrl-C (JSON: a line each)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:

    services = services_for(args)
    if args.request:
        from deployer.pipeline.status import request_by_prefix

        record = request_by_prefix(services, args.module, args.request)
        if args.json:
            emit_json(record)
            return 0
        out.print(f"request {record.request_id} ({record.kind.value}, {record.trigger.source}: "
                  f"{record.trigger.ref}): {record.status.value}", markup=False)
        for stage in record.stages:
            took = f" {stage.seconds:.1f}s" if stage.seconds is not None else ""
            out.print(f"  {stage.name}: {stage.status.value}{took}", markup=False)
            for step in stage.detail.get("steps", []):
                out.print(f"      {step}", markup=False)
        if record.waiting is not None:
            due = f", next look {ago(record.waiting.next_look_at)}" if record.waiting.next_look_at else ""
            out.print(f"  waiting: {record.waiting.what} (since {ago(record.waiting.since)}{due})",
                      markup=False)
        if record.superseded_by:
            out.print(f"  superseded by request {record.superseded_by}", markup=False)
        if record.error:
            out.print(f"  error: {record.error.get('message')}", markup=False)
            if record.error.get("log_tail"):
                out.print(record.error["log_tail"], markup=False)
        return 0
    name = args.agent
    if name is None:
        got_state = services.state.module(args.module)
        if got_state is None and not services.state.runs(args.module):
            from deployer.names import unknown_module

            raise unknown_module(services, args.module)
        if got_state is None or got_state.value.agent is None:
            raise NotFound(f"module {args.module} has no current agent",
                           hint="`deployer status` lists modules and their agents")
        name = got_state.value.agent.name
    elif services.runtime.get(name) is None:
        known = [a.name for a in services.runtime.list(args.module, detailed=False)]
        raise NotFound(f"no agent {name!r} of module {args.module}",
                       hint=f"its agents: {', '.join(known) or 'none running'}")
    text = services.runtime.logs(name, tail=args.tail)
    if args.follow:
        return follow(services, name, text, args.json)
    if args.json:
        emit_json({"agent": name, "log": text})
    else:
        out.print(text or f"(no output from {name} yet)", markup=False)
    return 0


#: how often a followed agent's output is read again (an ARM call on Azure)
FOLLOW_SECONDS = 2.0


def follow(services: Any, name: str, text: str, as_json: bool) -> int:
    """Print what is there, then what is new, until Ctrl-C. The runtime returns a tail, not a
    stream: new lines are what follows the last line already printed."""
    import json
    import sys
    import time

    def show(lines: list[str]) -> None:
        for line in lines:
            if as_json:
                sys.stdout.write(json.dumps({"agent": name, "line": line}) + "\n")
            else:
                out.print(line, markup=False)
        sys.stdout.flush()

    seen = text.splitlines()
    show(seen)
    try:
        while True:
            time.sleep(FOLLOW_SECONDS)
            lines = services.runtime.logs(name, tail=1000).splitlines()
            show(new_lines(seen, lines))
            seen = lines
    except KeyboardInterrupt:
        return 0


def new_lines(before: list[str], now: list[str]) -> list[str]:
    """The lines of ``now`` after its longest prefix that ends ``before``: a tail that moved on
    keeps only the part not shown yet; one that starts over (a restarted agent) is all new."""
    for size in range(min(len(before), len(now)), 0, -1):
        if before[-size:] == now[:size]:
            return now[size:]
    return now if before != now else []
