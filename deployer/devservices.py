"""Development services started by the project itself: Azurite and a local Prefect server.

Used by ``make demo`` and by the test session. Each runs as a child process in its own session on
free loopback ports, and is stopped by its PID (terminate, then kill) when the context exits,
also on failure or Ctrl-C. Nothing here touches a process it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: the emulator's published development account (documented by Microsoft; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
#: Azurite starts in about a second; a cold Prefect server migrates its SQLite database first
AZURITE_START_TIMEOUT = 30.0
PREFECT_START_TIMEOUT = 90.0
#: how long a service gets to exit after SIGTERM before SIGKILL
STOP_GRACE = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_process(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """Terminate a child we started in its own session: the whole session, by its leader's PID."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


def _spawn(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> Service:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=cwd, start_new_session=True)
    finally:
        log.close()
    return Service(name, process, log_path)


def _wait(service: Service, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n"
                               f"{service.log_tail()}")
        if ready():
            return
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{service.name} did not become ready in {timeout:g}s:\n{service.log_tail()}")


# -- Azurite ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AzuriteEndpoints:
    blob_port: int
    queue_port: int
    scheme: str = "http"  # https when started with a certificate

    @property
    def blob_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol={self.scheme};AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_url};"
                f"QueueEndpoint={self.queue_url};")


def azurite_command() -> Path:
    exe = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if not exe.exists():
        raise RuntimeError(f"Azurite is not installed at {exe}: run `npm ci` (make does it)")
    return exe


class AzuriteServer:
    """Azurite on fixed loopback ports and one data folder: ``stop`` and ``start`` again keep
    its blobs and messages (what a storage outage looks like to the deployer)."""

    def __init__(self, base: Path, ports: tuple[int, int, int] | None = None, *,
                 tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) PEM files: Azurite then serves HTTPS and accepts bearer
        tokens (``--oauth basic``, which it allows only over HTTPS) next to shared keys."""
        self.base = base
        blob, queue, table = ports or (free_port(), free_port(), free_port())
        self.endpoints = AzuriteEndpoints(blob, queue, "https" if tls else "http")
        self._table_port = table
        self._tls = tls
        self.service: Service | None = None

    def start(self) -> AzuriteEndpoints:
        self.base.mkdir(parents=True, exist_ok=True)
        ends = self.endpoints
        argv = [str(azurite_command()), "--blobHost", "127.0.0.1", "--blobPort", str(ends.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(ends.queue_port), "--tableHost",
                "127.0.0.1", "--tablePort", str(self._table_port), "--location", str(self.base),
                "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
        if self._tls:
            argv += ["--cert", str(self._tls[0]), "--key", str(self._tls[1]), "--oauth", "basic"]
        self.service = _spawn("azurite", argv, self.base / "azurite.log")
        _wait(self.service, lambda: port_open(ends.blob_port) and port_open(ends.queue_port),
              AZURITE_START_TIMEOUT)
        return ends

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


@contextlib.contextmanager
def azurite(workdir: Path | None = None) -> Iterator[AzuriteEndpoints]:
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="azurite-")) if owned else workdir
    assert base is not None
    server = AzuriteServer(base)
    try:
        yield server.start()
    finally:
        server.stop()
        if owned:
            shutil.rmtree(base, ignore_errors=True)


# -- deployer dev ---------------------------------------------------------------------------------


def dev_host(settings_file: Path, log_path: Path, *, poll: float = 0.2, port: int = 0,
             extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    """``deployer dev`` hosting the project's function app, as a child in its own session, with
    only the settings file's values (nothing of this process's DEPLOYER_/PREFECT_ environment).
    Stop it with ``stop_process``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    argv = [sys.executable, "-m", "deployer", "--settings", str(settings_file), "dev", "--app",
            str(PROJECT_ROOT / "function_app.py"), "--port", str(port), "--poll", str(poll),
            *(extra or [])]
    return _spawn("deployer dev", argv, log_path, env=env, cwd=PROJECT_ROOT).process


# -- Prefect server -----------------------------------------------------------------------------


def prefect_healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextlib.contextmanager
def prefect_server(workdir: Path | None = None, python: str = sys.executable, *,
                   port: int | None = None, ui: bool = False) -> Iterator[str]:
    """A Prefect server on SQLite in ``workdir`` (on ``port``, with its UI if ``ui``); yields
    its API URL."""
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="prefect-server-")) if owned else workdir
    assert base is not None
    base.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = prefect_env(base)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{base / 'prefect.db'}"
    if ui:
        env["PREFECT_SERVER_UI_ENABLED"] = "true"
        env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    prefect = str(Path(python).with_name("prefect"))
    service = _spawn("prefect server", [prefect, "server", "start", "--host", "127.0.0.1",
                                         "--port", str(port)], base / "prefect-server.log", env=env)
    url = f"http://127.0.0.1:{port}/api"

    try:
        _wait(service, lambda: prefect_healthy(url), PREFECT_START_TIMEOUT)
        yield url
    finally:
        service.stop()
        if owned:
            shutil.rmtree(base, ignore_errors=True)
