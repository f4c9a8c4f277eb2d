"""``deploy`` (the deploy.sh replacement) and ``dev`` (host function_app.py locally)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import threading
from pathlib import Path
from typing import Any

from deployer.cli import count, environ, seconds, services_for, settings_path
from deployer.cli.output import emit_json, err, out
from deployer.models import StageStatus


def register(sub: Any) -> None:
    p = sub.add_parser("deploy", help="deploy a module now, in this process: upload, build, "
                                      "start the new agent, re-point, drain the old one")
    p.add_argument("path", type=Path, help="flows/<module> folder")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (the exact ordered operations) and change nothing")
    p.add_argument("--repair", action="store_true",
                   help="when the module already runs this revision: publish its code to the "
                   "code store again and re-register its deployments (a copy that no longer "
                   "verifies is repaired by any re-upload too)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_deploy)

    p = sub.add_parser("dev", help="host function_app.py on this machine (no Functions host "
                                   "needed): blob, queue, timer and HTTP triggers")
    p.add_argument("--app", type=Path, default=None,
                   help="the app to host (default: function_app.py next to the settings file, "
                   "else in this folder)")
    p.add_argument("--port", type=_port, default=7071,
                   help="HTTP port on 127.0.0.1 (default 7071; 0: any free port)")
    p.add_argument("--poll", type=seconds, default=None,
                   help="seconds between polls of an empty queue or container "
                   "(default: host.json's queues.maxPollingInterval)")
    p.add_argument("--lease", type=count(1), default=30,
                   help="seconds a queue message stays invisible while its function runs "
                   "(renewed; after a crash it reappears this long after the last renewal)")
    p.add_argument("--retry-delay", type=count(0), default=None,
                   help="seconds before a failed message is retried (default: host.json)")
    p.add_argument("--services", action="store_true",
                   help="also start Azurite and a Prefect server with its UI where the settings "
                   "point (data kept under DEPLOYER_HOME/services), and stop them with the host: "
                   "the daily local loop (make dev)")
    p.set_defaults(handler=cmd_dev)


def _user() -> str:
    """Who runs the CLI, for the run record and notifications ("" when unknown)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 0-65535")
    return port


class CliProgress:
    """Stage lines on stderr, so that --json output on stdout stays clean."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._last_note = ""

    def stage(self, name: str, status: StageStatus, seconds: float | None,
              detail: dict[str, Any]) -> None:
        if self.quiet:
            return
        mark = {StageStatus.RUNNING: "…", StageStatus.DONE: "[green]✓[/]",
                StageStatus.SKIPPED: "[dim]-[/]", StageStatus.FAILED: "[red]✗[/]"}[status]
        took = f" [dim]({seconds:.1f}s)[/]" if seconds is not None else ""
        extra = _stage_note(name, status, detail)
        err.print(f"  {mark} {name}{took}{extra}")

    def note(self, message: str) -> None:
        if not self.quiet and message != self._last_note:
            self._last_note = message
            err.print(f"    {message}", markup=False, style="dim")


def _stage_note(name: str, status: StageStatus, detail: dict[str, Any]) -> str:
    if status is StageStatus.RUNNING:
        return ""
    if name == "reuse-image":
        return " [dim](no build)[/]"
    if name == "start-agent" and detail.get("agent"):
        return f" {detail['agent']}"
    if name == "register" and detail.get("deployments"):
        return f" {', '.join(detail['deployments'])}"
    if name.startswith("drain") and detail.get("crashed"):
        return f" [yellow]{len(detail['crashed'])} run(s) marked crashed[/]"
    return ""


def cmd_deploy(args: argparse.Namespace) -> int:
    from deployer.names import module_folder
    from deployer.pipeline.intake import accept_bundle
    from deployer.pipeline.upload import upload_module
    from deployer.rotation.dryrun import dry_run

    module_folder(args.path)  # a typo is said before any setting is read
    services = services_for(args)
    if args.dry_run:
        return show_plan(dry_run(services, args.path, repair=args.repair), as_json=args.json)
    uploaded = upload_module(services, args.path, explicit=True, user=_user())
    if not args.json:
        err.print(f"deploying [bold]{uploaded.module}[/] (bundle {uploaded.blob})")
    # the blob trigger's own use case: the same request its upload's event makes
    record = accept_bundle(services, uploaded.blob, via="cli", detail={
        "user": _user(), **({"repair": "true"} if args.repair else {})})
    return follow_here(services, record, as_json=args.json)


def show_plan(plan: dict[str, Any], *, as_json: bool) -> int:
    """A dry run's plan (``deploy --dry-run``, ``rollback --dry-run``)."""
    if as_json:
        emit_json(plan)
        return 0
    out.print(f"[bold]{plan['module']}[/] revision {plan['revision']}: {plan['reason']}")
    if plan["changed"]:
        out.print(f"  changed: {', '.join(plan['changed'])}; path: {plan['path']}", markup=False)
    if plan["why"]:
        out.print(f"  why: {plan['why']}", markup=False)
    for number, step in enumerate(plan["steps"], start=1):
        out.print(f"  {number}. {step}", markup=False)
    _show_sizes(plan.get("sizes"))
    out.print("dry run: nothing was changed", style="dim")
    return 0


def _show_sizes(sizes: dict[str, Any] | None) -> None:
    if not sizes:
        return
    agent = sizes["agent"]
    if agent is None:  # isolation: run
        out.print("  no agent: each flow run gets a container of its own (deployer.isolation: run)",
                  markup=False)
        for name, run in sizes["runs"].items():
            out.print(f"  runs of {name}: {run['cpu']:g} vCPU, {run['memory_gb']:g} GB each",
                      markup=False)
        return
    whence = "prefect.yaml deployer.agent" if agent["declared"] else \
        "DEPLOYER_AGENT_CPU / DEPLOYER_AGENT_MEMORY_GB, raised to fit the deployments"
    out.print(f"  agent: {agent['cpu']:g} vCPU, {agent['memory_gb']:g} GB ({whence})", markup=False)
    for name, run in sizes["runs"].items():
        limit = (f"at most {run['memory_gb']:g} GB each" if run["memory_gb"] is not None
                 else "no memory limit of their own")
        out.print(f"  runs of {name}: {limit}", markup=False)


def run_here(services: Any, request: Any, *, as_json: bool) -> int:
    """Submit ``request`` (a rollback, say), then drive it from this process."""
    from deployer.request_queue import new_record, submit

    return follow_here(services, submit(services, new_record(request)), as_json=as_json)


def follow_here(services: Any, record: Any, *, as_json: bool) -> int:
    """Drive a request from this process, step by step with progress, until what it does to
    the module is known (old agents may go on draining under the function app); exit 0 when
    the revision is serving."""
    from deployer.cli.follow import report
    from deployer.models import RunStatus
    from deployer.rotation.drive import drive

    if record.status is RunStatus.AWAITING_APPROVAL:  # nothing starts before its approval
        if as_json:
            emit_json(record)
        else:
            env = services.settings.environment
            flag = f"--env {env} " if env else ""
            err.print(f"request {record.request_id[:8]} of {record.module} awaits an approval in "
                      f"{services.settings.environment_name} "
                      f"({services.settings.approval}): `deployer {flag}approve "
                      f"{record.request_id[:8]}` (or reject it with --reason)", markup=False)
        return 0
    if not record.status.finished:
        record = drive(services, record.module, record.request_id,
                       progress=CliProgress(quiet=as_json))
    if as_json:
        emit_json(record)
    else:
        report(record)
    return 0 if record.status in (RunStatus.SUCCEEDED, RunStatus.NOOP, RunStatus.DRAINING,
                                  RunStatus.BAKING) else 1


def cmd_dev(args: argparse.Namespace) -> int:
    import logging

    from deployer.config import SETTINGS
    from deployer.devhost import DevHost, HostOptions, load_app
    from deployer.errors import UsageError

    merged = environ(args)
    for key, value in merged.items():  # app settings are the host's environment
        os.environ.setdefault(key, value)
    for spec in SETTINGS:  # binding expressions (%DEPLOYER_...%) see the deployer's defaults
        if spec.default:
            os.environ.setdefault(spec.env, spec.default)
    found = settings_path(args)
    app = args.app or (found.parent if found else Path.cwd()) / "function_app.py"
    if not app.is_file():
        raise UsageError(f"{app} does not exist", hint="run from the project folder or "
                         "pass --app path/to/function_app.py")
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("azure", "httpx", "prefect"):  # SDK request logs drown the host's own lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    host = DevHost(load_app(app), HostOptions.from_host_json(
        app.with_name("host.json"), poll_seconds=args.poll, http_port=args.port,
        lease_seconds=args.lease, retry_delay_seconds=args.retry_delay))
    out.print("[bold]deployer dev[/]: hosting " + str(app))
    for line in host.describe():
        out.print(f"  {line}", markup=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with contextlib.ExitStack() as running:
        if args.services:
            from deployer.config import Settings
            from deployer.devstack import services

            home = Settings.from_env(merged).home_path
            for line in running.enter_context(services(merged, home)).lines:
                out.print(f"  {line}", markup=False)
        return _host(host, args, stop)


def _host(host: Any, args: argparse.Namespace, stop: threading.Event) -> int:
    from deployer.errors import UsageError

    try:
        host.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise UsageError(f"port {args.port} on 127.0.0.1 is already in use (another `deployer "
                         "dev` or `func start`?)", hint="stop it, or pass --port N "
                         "(--port 0 picks a free one)") from None
    if host.http is not None:
        base = f"http://127.0.0.1:{host.http.port}/api"
        out.print(f"  dashboard: {base}/dashboard", markup=False)
        out.print(f"  HTTP on {base}/ (status: {base}/status, webhook: {base}/acr-webhook)", markup=False)
    out.print("ready: Ctrl-C stops it all", markup=False)
    stop.wait()
    out.print("stopping ...")
    host.stop()
    return 0
