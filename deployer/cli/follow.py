"""Following a request from the CLI: stage by stage, until it finishes or time runs out."""

from __future__ import annotations

import time

from deployer.cli.output import err
from deployer.errors import DeployerError
from deployer.models import RunRecord, RunStatus
from deployer.services import Services

#: how often to re-read the run record while following it
POLL_SECONDS = 0.5


def follow_request(services: Services, module: str, request_id: str, *, timeout: float,
                   quiet: bool = False) -> RunRecord:
    deadline = time.monotonic() + timeout
    shown: set[tuple[str, str]] = set()
    status = err.status(f"waiting for request {request_id} to be picked up ...") if not quiet else None
    if status:
        status.start()
    try:
        while True:
            got = services.state.run(module, request_id)
            if got is not None:
                record = got.value
                for stage in record.stages:
                    key = (stage.name, stage.status.value)
                    if key not in shown:
                        shown.add(key)
                        if not quiet:
                            took = f" ({stage.seconds:.1f}s)" if stage.seconds is not None else ""
                            err.print(f"  {stage.name}: {stage.status.value}{took}", markup=False)
                if status:
                    current = next((s.name for s in reversed(record.stages)
                                    if s.status.value == "running"), record.status.value)
                    waiting = f": {record.waiting.what}" if record.waiting else ""
                    status.update(f"{module}: {current}{waiting} ...")
                if record.status.settled:
                    if status:
                        status.stop()
                        status = None
                    if not quiet:
                        report(record)
                    return record
            if time.monotonic() > deadline:
                raise DeployerError(f"request {request_id} did not finish in {timeout:g}s",
                                    hint="is the function app (or `deployer dev`) running? "
                                    "`deployer status` shows where it stands")
            time.sleep(POLL_SECONDS)
    finally:
        if status:
            status.stop()


def report(record: RunRecord) -> None:
    from deployer.rotation.ending import live_after

    revision = record.revision.id if record.revision else "-"
    if record.status in (RunStatus.SUCCEEDED, RunStatus.NOOP, RunStatus.DRAINING, RunStatus.BAKING):
        what = "nothing to do: already current" if record.status is RunStatus.NOOP else "deployed"
        err.print(f"[green]{record.status.value}[/]: {record.module} {what} (revision {revision})")
        live = live_after(record)
        if live is not None:
            err.print(f"  live after {live:.0f} s: new runs use revision {revision}", markup=False)
        if record.status is RunStatus.BAKING and record.waiting is not None:
            err.print(f"  baking: {record.waiting.what}. Meanwhile the previous agent stays ready and "
                      "takes over on its own if the new revision's runs fail (the bake window: "
                      "DEPLOYER_BAKE_SECONDS, _RUNS, _FAILURE_RATIO)", markup=False)
        if record.status is RunStatus.DRAINING and record.waiting is not None:
            err.print(f"  old agents finish their runs first: {record.waiting.what}; the function "
                      "app stops them when they are done (`deployer status` shows them)",
                      markup=False)
        if record.error:
            err.print(f"  [yellow]note[/]: {record.error.get('message', '')}")
        return
    if record.status is RunStatus.SUPERSEDED:
        err.print(f"[yellow]superseded[/]: {record.module} request {record.request_id} (revision "
                  f"{revision}) did not run: the newer request {record.superseded_by} replaced it "
                  "(the newest upload wins)")
        return
    err.print(f"[red]{record.status.value}[/]: {record.module} request {record.request_id}")
    error = record.error or {}
    if error.get("message"):  # its problems, if any, follow one by one: the first line only
        message = str(error["message"])
        err.print(f"  {message.splitlines()[0] if error.get('problems') else message}", markup=False)
    for problem in error.get("problems", []) or []:
        where = problem.get("file") or ""
        line = f":{problem['line']}" if problem.get("line") else ""
        err.print(f"  - {where}{line}: {problem.get('message')}", markup=False)
    if error.get("hint"):
        err.print(f"  hint: {error['hint']}", markup=False)
