"""``make demo``: the product's main job on this machine, with no Azure at all.

Starts Azurite, a Prefect server and ``deployer dev`` (the function app) on loopback, uploads
``flows/finance`` to the bundles container (the real trigger path), follows the request until the
new agent is ONLINE, runs the deployment once to COMPLETED, prints the status table and the run's
result, and stops everything it started, also on Ctrl-C or failure.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from rich.markdown import Markdown

from deployer import devservices
from deployer.bootstrap import AppServices, build
from deployer.cli.follow import follow_request
from deployer.cli.output import err, out
from deployer.cli.status import render
from deployer.config import Settings
from deployer.errors import DeployerError
from deployer.models import RunStatus
from deployer.pipeline.status import module_statuses
from deployer.pipeline.upload import upload_module

ROOT = devservices.PROJECT_ROOT
MODULE = ROOT / "flows" / "finance"
#: the first build downloads prefect into the uv cache on a fresh machine
REQUEST_TIMEOUT = 600.0
RUN_TIMEOUT = 180.0
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def main() -> int:
    work = ROOT / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if not (MODULE / ".env").exists():
        shutil.copy(MODULE / ".env.example", MODULE / ".env")
    with ExitStack() as stack:
        try:
            err.print("[bold]1/5[/] starting Azurite and a Prefect server ...")
            azurite = stack.enter_context(devservices.azurite(work / "azurite"))
            api = stack.enter_context(devservices.prefect_server(work / "prefect"))
            values = {
                "AzureWebJobsStorage": azurite.connection_string, "PREFECT_API_URL": api,
                "DEPLOYER_CONFIG_DIGEST_KEY": secrets.token_hex(32),
                "DEPLOYER_HOME": str(work / "home"), "DEPLOYER_WORKER_POLL_SECONDS": "2",
            }
            settings_file = work / "local.settings.json"
            settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2))
            services = build(Settings.from_env(values), interactive=True)
            stack.callback(_stop_agents, services)
            err.print(f"    Azurite blob :{azurite.blob_port}, queue :{azurite.queue_port}; "
                      f"Prefect {api}")

            err.print("[bold]2/5[/] starting `deployer dev` (hosts function_app.py) ...")
            dev = _start_host(settings_file, work)
            stack.callback(_stop_host, dev)

            err.print(f"[bold]3/5[/] uploading {MODULE.relative_to(ROOT)} to the bundles container ...")
            uploaded = upload_module(services, MODULE)
            err.print(f"    bundles/{uploaded.blob}: the blob trigger takes it from here")
            record = follow_request(services, uploaded.module, uploaded.request_id,
                                    timeout=REQUEST_TIMEOUT)
            if record.status is not RunStatus.SUCCEEDED:
                err.print(f"[red]the deploy did not succeed[/]; host log:\n{_tail(work / 'dev.log')}")
                return 1

            err.print("[bold]4/5[/] running the daily-pnl deployment once ...")
            run = services.orchestrator.start_run("daily-pnl", "daily-pnl")
            state = _wait_run(services, run.id)
            if state != "COMPLETED":
                err.print(f"[red]the flow run ended {state}[/]")
                return 1

            err.print("[bold]5/5[/] status")
            out.print(render(module_statuses(services)))
            out.print(f"\nflow run [bold]{run.name}[/] ({run.id}): [green]COMPLETED[/]")
            for artifact in services.orchestrator.run_artifacts(run.id):
                out.print(Markdown(artifact))
            out.print(f"\nPrefect API: {api} (stopped when the demo ends)", style="dim")
            return 0
        except KeyboardInterrupt:
            err.print("interrupted: stopping everything the demo started ...")
            return 130
        except DeployerError as exc:
            err.print(f"[red]error:[/] {exc}")
            return 1
        finally:
            err.print("stopping agents, deployer dev, the Prefect server and Azurite ...")


def _start_host(settings_file: Path, work: Path) -> subprocess.Popen[bytes]:
    return devservices.dev_host(settings_file, work / "dev.log", poll=0.5,
                                port=devservices.free_port())


def _stop_host(process: subprocess.Popen[bytes]) -> None:
    devservices.stop_process(process, grace=30)


def _stop_agents(services: AppServices) -> None:
    for agent in services.runtime.list():
        services.runtime.stop(agent.name)


def _wait_run(services: AppServices, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    last = ""
    with err.status("flow run: waiting for the agent to pick it up ...") as status:
        while time.monotonic() < deadline:
            state = services.orchestrator.run_status(run_id).state
            if state != last:
                status.update(f"flow run: {state} ...")
                err.print(f"    flow run {state}")
                last = state
            if state in FINAL:
                return state
            time.sleep(0.5)
    return f"{last} after {RUN_TIMEOUT:g}s"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
