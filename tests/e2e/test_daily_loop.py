"""`deployer dev --services` (make dev): one command starts Azurite, a Prefect server with its UI
and the host where the settings point, prints the URLs, keeps the data between runs and stops
everything it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from deployer.devservices import AZURITE_ACCOUNT, AZURITE_KEY, free_port, port_open, stop_process

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[2]


def start(project: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "deployer", "dev", "--services", "--port", "0",
                                 "--app", str(ROOT / "function_app.py")], cwd=project, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "ready: Ctrl-C stops it all" in text:
            return text
        assert process.poll() is None, text
        time.sleep(0.3)
    raise AssertionError(log.read_text(errors="replace"))


def test_one_command_starts_the_stack_keeps_its_data_and_stops_what_it_started(tmp_path: Path) -> None:
    blob, queue, table, prefect = free_port(), free_port(), free_port(), free_port()
    connection = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                  f"BlobEndpoint=http://127.0.0.1:{blob}/{AZURITE_ACCOUNT};"
                  f"QueueEndpoint=http://127.0.0.1:{queue}/{AZURITE_ACCOUNT};"
                  f"TableEndpoint=http://127.0.0.1:{table}/{AZURITE_ACCOUNT};")
    project = tmp_path / "project"
    project.mkdir()
    (project / "local.settings.json").write_text(json.dumps({"Values": {
        "AzureWebJobsStorage": connection, "PREFECT_API_URL": f"http://127.0.0.1:{prefect}/api",
        "DEPLOYER_CONFIG_DIGEST_KEY": "daily-loop-key-0123456789abcdef0123"}}))
    log = tmp_path / "dev.log"
    process = start(project, log)
    try:
        text = wait_ready(process, log)
        assert f"Azurite on 127.0.0.1:{blob}" in text and f"Prefect UI: http://127.0.0.1:{prefect}/" in text
        assert "status: http://127.0.0.1:" in text and "/api/acr-webhook" in text
        dashboard = next(line for line in text.splitlines() if "dashboard: http" in line).split("dashboard:")[1].strip()
        with urllib.request.urlopen(dashboard, timeout=10) as page:  # the URL it prints is the page
            assert page.status == 200 and b"<html" in page.read(2000).lower()
        with urllib.request.urlopen(f"http://127.0.0.1:{prefect}/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read(2000).lower()  # the UI, not only the API
        service = BlobServiceClient.from_connection_string(connection)
        service.create_container("kept").upload_blob("note.txt", b"still here")
    finally:
        stop_process(process, grace=60)
    assert process.returncode == 0, log.read_text(errors="replace")
    assert not port_open(blob) and not port_open(prefect)  # what it started, it stopped
    assert (project / ".deployer" / "services" / "azurite").is_dir()  # under the project's home
    process = start(project, log)
    try:
        wait_ready(process, log)
        got = BlobServiceClient.from_connection_string(connection).get_blob_client("kept", "note.txt")
        assert got.download_blob().readall() == b"still here"
    finally:
        stop_process(process, grace=60)
    assert not port_open(blob) and not port_open(prefect)
