"""Local agent runtime: an agent is a ``prefect worker start`` process from the revision's venv.

Each agent runs in its own process session, with the ``.env`` values and Prefect settings in its
environment (never on its command line) and nothing else of the deployer's environment (storage
keys stay out). Its record lives at ``<home>/agents/<name>.json`` so that any process (the CLI,
``deployer dev``, the tests) can list, health-check and stop it; the record keeps the process's
start time so that a recycled PID is never mistaken for the agent. Stopping is SIGTERM to the
worker and every process under it (flow runs run in sessions of their own), then SIGKILL.

For a module with ``isolation: run`` the same runtime starts a process per flow run
(``Role.RUN``: Prefect's engine for that run, from the revision's venv, under the limiter that
keeps its deployment's memory limit: ``run_limits.RUNNER``) and the preflight alone to prove a
revision's flows load (``Role.CHECK``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from deployer import preflight, run_limits
from deployer.adapters.system_clock import SYSTEM_CLOCK
from deployer.errors import AgentUnhealthy
from deployer.ports.agents import AgentInfo, AgentSpec, AgentState, Role

logger = logging.getLogger(__name__)
#: a worker stops in about a second on SIGTERM; flow runs get a little longer to report
STOP_GRACE_SECONDS = 15.0
#: variables of the deployer's own environment an agent may inherit (nothing secret)
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


class LocalAgentRuntime:
    #: a local worker shows ONLINE about two seconds after it starts
    expected_start_seconds = 2.0

    def __init__(self, home: Path) -> None:
        self._dir = home / "agents"

    def _record_path(self, name: str) -> Path:
        return self._dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self._dir / f"{name}.log"

    def start(self, spec: AgentSpec) -> AgentInfo:
        existing = self.get(spec.name)
        if existing is not None and (existing.state is AgentState.RUNNING
                                     or spec.role is not Role.AGENT):
            return existing  # started by an earlier attempt (a run or a check runs once)
        self._dir.mkdir(parents=True, exist_ok=True)
        prefect_home = self._dir / spec.name
        prefect_home.mkdir(exist_ok=True)
        venv = Path(spec.image.ref) / "venv"
        env = {k: os.environ[k] for k in INHERITED if k in os.environ}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        env.update(spec.env)
        env.update(spec.settings)  # the deployer's Prefect settings win over .env
        env["PREFECT_HOME"] = str(prefect_home)
        env["VIRTUAL_ENV"] = str(venv)
        argv = _argv(spec, str(venv / "bin" / "python"))
        # a host killed between starting the worker and writing its record left the worker
        # running without one: adopt it instead of starting a second worker of the same name
        orphan = _started_with(argv)
        if orphan is not None:
            pid, created = orphan.pid, orphan.create_time()
            logger.warning("agent.adopted name=%s pid=%d", spec.name, pid)
        else:
            with open(self.log_path(spec.name), "ab") as log:
                process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env, cwd=prefect_home,
                                           start_new_session=True)
            pid = process.pid
            try:
                created = psutil.Process(pid).create_time()
            except psutil.NoSuchProcess as exc:
                raise AgentUnhealthy(f"agent {spec.name} exited at once:\n{self.logs(spec.name)}") from exc
        record = {"name": spec.name, "module": spec.module, "revision_id": spec.revision_id,
                  "queue": spec.queue, "pool": spec.pool, "pid": pid,
                  "create_time": created, "started_at": SYSTEM_CLOCK.now().isoformat(),
                  "image": spec.image.ref, "role": spec.role.value,
                  "flow_run_id": spec.flow_run_id}
        partial = self._record_path(spec.name).with_suffix(".json.partial")
        partial.write_text(json.dumps(record, indent=2))
        partial.replace(self._record_path(spec.name))
        logger.info("agent.started name=%s pid=%d revision=%s", spec.name, pid, spec.revision_id)
        return self._info(record)

    def get(self, name: str) -> AgentInfo | None:
        record = self._read(self._record_path(name))
        return self._info(record) if record else None

    def list(self, module: str | None = None, *, detailed: bool = True,
             role: Role = Role.AGENT) -> list[AgentInfo]:
        if not self._dir.is_dir():
            return []
        infos = []
        for path in sorted(self._dir.glob("*.json")):
            record = self._read(path)
            if record and (module is None or record.get("module") == module) \
                    and record.get("role", Role.AGENT.value) == role.value:
                infos.append(self._info(record))
        return infos

    def stop(self, name: str) -> None:
        record = self._read(self._record_path(name))
        if record is None:
            return
        process = _process(record)
        if process is not None:
            victims = [process, *process.children(recursive=True)]
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.send_signal(signal.SIGTERM)
            _, alive = psutil.wait_procs(victims, timeout=STOP_GRACE_SECONDS)
            for victim in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.kill()
            psutil.wait_procs(alive, timeout=5)
            _reap(record["pid"])
        self._record_path(name).unlink(missing_ok=True)
        shutil.rmtree(self._dir / name, ignore_errors=True)
        logger.info("agent.stopped name=%s", name)

    def logs(self, name: str, tail: int = 50) -> str:
        try:
            lines = self.log_path(name).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _info(self, record: dict[str, Any]) -> AgentInfo:
        process = _process(record)
        state = AgentState.RUNNING if process is not None else AgentState.STOPPED
        return AgentInfo(name=record["name"], module=record["module"],
                         revision_id=record["revision_id"], queue=record["queue"], state=state,
                         started_at=datetime.fromisoformat(record["started_at"]),
                         detail=f"pid {record['pid']}" if process else "exited",
                         role=Role(record.get("role", Role.AGENT.value)),
                         flow_run_id=str(record.get("flow_run_id", "")))


def _argv(spec: AgentSpec, python: str) -> list[str]:
    """An agent: its worker, behind the preflight that loads the revision's flows in its own
    venv first; a run: Prefect's engine under the limiter; a check: the preflight alone."""
    if spec.role is Role.RUN:
        return [python, "-c", run_limits.RUNNER, spec.flow_run_id]  # its id: one per run
    worker = [] if spec.role is Role.CHECK else [
        "worker", "start", "--pool", spec.pool, "--name", spec.name, "--work-queue", spec.queue,
        "--type", "process"]
    if spec.entrypoints or spec.role is Role.CHECK:
        return preflight.command(python, spec.image.working_dir, list(spec.entrypoints), worker,
                                 list(spec.pull_steps), spec.checks)
    return [python, "-m", "prefect", *worker]


def _started_with(argv: list[str]) -> psutil.Process | None:
    """A live process whose command line is exactly ``argv`` (a worker of that agent name)."""
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.info["cmdline"] == argv and process.status() != psutil.STATUS_ZOMBIE:
                return process
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def _process(record: dict[str, Any]) -> psutil.Process | None:
    """The agent's process if it is still the one we started (not a recycled PID) and alive."""
    try:
        process = psutil.Process(record["pid"])
        if abs(process.create_time() - record["create_time"]) > 0.01:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(record["pid"])
            return None
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return None


def _reap(pid: int) -> None:
    """Collect an exited child of this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
