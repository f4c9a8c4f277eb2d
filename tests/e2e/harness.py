"""The whole trigger path on this machine: Azurite, a Prefect server, `deployer dev` (the
function app) as its own process, real uv images and real worker processes.

Each test gets its own containers, queue, deployer home and module name, so tests never see
each other's agents, pools or runs on the shared Azurite and Prefect server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.bootstrap import AppServices, build
from deployer.config import Settings
from deployer.models import RunRecord
from deployer.pipeline.upload import Uploaded, upload_module
from tests.builders import module_files, write_module

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-config-digest-key-0123456789abcdef"
#: generous: a cold uv cache downloads prefect on the first build
REQUEST_TIMEOUT = 300.0
FLOW = '''import os
import time

from prefect import flow


@flow(name="{name}", log_prints=True)
def hello(seconds: float = 0.0) -> str:
    time.sleep(seconds)
    print("greeting", os.environ.get("GREETING", "?"))
    return os.environ.get("GREETING", "?")
'''
PREFECT_YAML = """name: {name}
deployments:
  - name: hello
    entrypoint: flow.py:hello
    parameters:
      seconds: 0
"""


def demo_files(name: str, changes: dict[str, str | bytes | None] | None = None) -> dict[str, bytes]:
    """The e2e module's files; ``{name}`` in flow.py (the flow's name) becomes the module name."""
    merged: dict[str, str | bytes | None] = {"flow.py": FLOW, "prefect.yaml": PREFECT_YAML.format(name=name),
                                             **(changes or {})}
    flow = merged["flow.py"]
    if isinstance(flow, str):
        merged["flow.py"] = flow.replace("{name}", name)
    return module_files(name, merged)


@dataclass
class Stack:
    azurite_connection: str
    prefect_api: str
    work: Path
    extra: dict[str, str] = field(default_factory=dict)
    venvs: Path | None = None
    name: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:8]}")
    dev: subprocess.Popen[bytes] | None = None
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)  # more hosts, same storage
    http_port: int = 0
    _services: AppServices | None = None

    @property
    def values(self) -> dict[str, str]:
        tag = self.name
        return {
            "AzureWebJobsStorage": self.azurite_connection, "PREFECT_API_URL": self.prefect_api,
            "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_HOME": str(self.work / "home"),
            "DEPLOYER_BUNDLES_CONTAINER": f"bundles-{tag}", "DEPLOYER_STATE_CONTAINER": f"state-{tag}",
            "DEPLOYER_REQUEST_QUEUE": f"requests-{tag}", "DEPLOYER_WORKER_POLL_SECONDS": "1",
            "DEPLOYER_LOCK_LEASE_SECONDS": "15", "DEPLOYER_HEALTH_TIMEOUT_SECONDS": "60",
            "DEPLOYER_BAKE_SECONDS": "0",  # tests of the bake window set their own
            **({"DEPLOYER_VENV_DIR": str(self.venvs)} if self.venvs else {}),
            **self.extra,
        }

    @property
    def settings_file(self) -> Path:
        path = self.work / "local.settings.json"
        path.write_text(json.dumps({"Values": self.values}))
        return path

    @property
    def services(self) -> AppServices:
        if self._services is None:
            self._services = build(Settings.from_env(self.values))
        return self._services

    # -- the function host ------------------------------------------------------------------

    def start_host(self, lease_seconds: int = 30, *, another: bool = False) -> None:
        """``deployer dev`` as its own process; ``another``: one more host next to the first (two
        function app instances on the same storage)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
        (self.work / "tmp").mkdir(exist_ok=True)
        env["TMPDIR"] = str(self.work / "tmp")  # what the host extracts, the tests can inspect
        from deployer.devservices import free_port

        port = free_port()
        log = open(self.work / "dev.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [sys.executable, "-m", "deployer", "--settings", str(self.settings_file), "dev",
             "--app", str(ROOT / "function_app.py"), "--port", str(port), "--poll", "0.3",
             "--lease", str(lease_seconds), "--retry-delay", "2"],
            cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if another:
            self.others.append(process)
        else:
            self.dev, self.http_port = process, port

    def stop_host(self, *, kill: bool = False) -> None:
        for process in [self.dev, *self.others]:
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            process.wait(timeout=60)
        self.others = []

    def poisoned(self) -> list[bytes]:
        """What this stack's host gave up on: its request queue's poison queue, and blob
        poison messages naming its bundles container."""
        from deployer.adapters.devhost_storage import BLOB_POISON_QUEUE, poison_queue, request_queue

        values = self.values
        out = [m.body for m in poison_queue(self.azurite_connection, values["DEPLOYER_REQUEST_QUEUE"])
               .receive(visibility_timeout=1, max_messages=32)]
        blobs = request_queue(self.azurite_connection, BLOB_POISON_QUEUE).receive(
            visibility_timeout=1, max_messages=32)
        return out + [m.body for m in blobs if values["DEPLOYER_BUNDLES_CONTAINER"].encode() in m.body]

    def host_log(self, tail: int | None = 4000) -> str:
        path = self.work / "dev.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``deployer`` as a user runs it, with this stack's settings file."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
        return subprocess.run([sys.executable, "-m", "deployer", "--settings", str(self.settings_file),
                               *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)

    # -- modules -------------------------------------------------------------------------------

    def upload(self, changes: dict[str, str | bytes | None] | None = None) -> Uploaded:
        folder = self.work / "src" / uuid.uuid4().hex[:6]
        root = write_module(folder, self.name, demo_files(self.name, changes))
        return upload_module(self.services, root)

    def wait_request(self, uploaded: Uploaded, timeout: float = REQUEST_TIMEOUT,
                     on_poll: Callable[[], None] | None = None,
                     until: Callable[[RunRecord], bool] = lambda r: r.status.finished) -> RunRecord:
        return self.wait_record(uploaded.request_id, timeout, on_poll, until)

    def wait_record(self, request_id: str, timeout: float = REQUEST_TIMEOUT,
                    on_poll: Callable[[], None] | None = None,
                    until: Callable[[RunRecord], bool] = lambda r: r.status.finished) -> RunRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if on_poll is not None:
                on_poll()
            got = self.services.state.run(self.name, request_id)
            if got is not None and until(got.value):
                return got.value
            if self.dev is not None and self.dev.poll() is not None and on_poll is None:
                raise AssertionError(f"deployer dev exited:\n{self.host_log()}")
            time.sleep(0.2)
        raise AssertionError(f"request {request_id} not done in {timeout}s:\n{self.host_log()}")

    def deploy(self, changes: dict[str, str | bytes | None] | None = None) -> RunRecord:
        return self.wait_request(self.upload(changes))

    # -- what runs -----------------------------------------------------------------------------

    def agents(self) -> list[Any]:
        return self.services.runtime.list(self.name)

    def running_agents(self) -> list[str]:
        return [a.name for a in self.agents() if a.state.value == "running"]

    def online(self) -> set[str]:
        return self.services.orchestrator.online_workers(self.name)

    def current_agent(self) -> str:
        got = self.services.state.module(self.name)
        assert got is not None and got.value.agent is not None
        return got.value.agent.name

    def cleanup(self) -> None:
        self.stop_host()
        runtime = self.services.runtime
        for agent in runtime.list():
            runtime.stop(agent.name)
