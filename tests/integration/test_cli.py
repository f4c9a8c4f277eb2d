"""The CLI's contract: exit codes 0/1/2, errors without tracebacks, --json for machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.cli import main
from tests.builders import module_files, write_module
from tests.integration.conftest import KEY, Cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings_file(tmp_path: Path, storage_connection: str) -> Path:
    tag = os.urandom(5).hex()
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {
        "AzureWebJobsStorage": storage_connection, "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_BUNDLES_CONTAINER": f"bundles-{tag}",
        "DEPLOYER_STATE_CONTAINER": f"state-{tag}", "DEPLOYER_REQUEST_QUEUE": f"requests-{tag}"}}))
    return path


def run_entry(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``deployer`` as its own process: for what only the entry point shows (exit codes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    return subprocess.run([sys.executable, "-m", "deployer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_validate_of_a_good_module_exits_0(cli: Cli, tmp_path: Path) -> None:
    done = cli("validate", str(write_module(tmp_path)), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployments"] == [{"name": "hello", "entrypoint": "flow.py:hello"}]


def test_validate_names_the_dependencies_and_what_fast_deploys_need(cli: Cli, tmp_path: Path) -> None:
    done = cli("validate", str(write_module(tmp_path / "a")))
    assert done.returncode == 0, done.stderr
    assert "dependencies (Dockerfile, requirements.txt)" in done.stdout
    assert "note: on Azure, code-only changes deploy the slow way" in done.stdout
    assert "add prefect-azure[blob_storage]>=0.4.13 to requirements.txt" in done.stdout
    fast = module_files(changes={"requirements.txt": "prefect>=3.4,<4\nprefect-azure[blob_storage]\n",
                                 "Dockerfile": "FROM prefecthq/prefect:3-python3.11\nCOPY . /opt/prefect/flows/demo/\n"
                                               "RUN pip install -r /opt/prefect/flows/demo/requirements.txt\n",
                                 ".dockerignore": ".env\n"})
    done = cli("validate", str(write_module(tmp_path / "b", files=fast)), "--json")
    summary = json.loads(done.stdout)
    assert len(summary["notes"]) == 1 and "every change rebuilds" in summary["notes"][0]
    assert "Dockerfile:2: COPY ." in summary["dependencies"]["why"] and "flow.py" in summary["dependencies"]["files"]


def test_validate_checks_prefect_yaml_in_full_with_file_and_line(cli: Cli, tmp_path: Path) -> None:
    text = ("name: demo\ndeployments:\n  - name: hello\n    entrypoint: flow.py:hello\n"
            "    parameters: {nme: x}\n    triggers: []\n    schedules:\n      - cron: '0 0 30 2 *'\n")
    root = write_module(tmp_path, files=module_files(changes={"prefect.yaml": text}))
    done = cli("validate", str(root))
    assert done.returncode == 1, done.stdout
    assert "prefect.yaml:5: deployment 'hello': parameter 'nme' is not one of hello()'s parameters" in done.stderr
    assert "prefect.yaml:6: deployment 'hello': 'triggers' is not honoured" in done.stderr
    assert "prefect.yaml:8: deployment 'hello': schedule 1: never produces a run" in done.stderr
    assert "(3 problems)" in done.stderr and "Traceback" not in done.stderr


def test_validate_of_a_bad_module_exits_1_listing_problems_without_traceback(tmp_path: Path) -> None:
    root = write_module(tmp_path, files=module_files(changes={".env": "oops hunter2\n", "Dockerfile": None}))
    done = run_entry("validate", str(root))
    assert done.returncode == 1
    assert ".env:1: expected KEY=VALUE" in done.stderr and "Dockerfile: is missing" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_entry("frobnicate").returncode == 2
    assert run_entry("validate").returncode == 2
    assert run_entry("validate", str(tmp_path / "nope")).returncode == 2


def test_new_scaffolds_a_module_that_validates(cli: Cli, tmp_path: Path) -> None:
    done = cli("new", "risk-report", "--dir", str(tmp_path / "flows"))
    assert done.returncode == 0, done.stderr
    assert cli("validate", str(tmp_path / "flows" / "risk-report")).returncode == 0
    assert cli("new", "risk-report", "--dir", str(tmp_path / "flows")).returncode == 2
    assert cli("new", "Bad_Name", "--dir", str(tmp_path / "flows")).returncode == 2  # as a folder that exists: the argument is refused


def test_bundle_writes_a_deterministic_archive_and_prints_digests(cli: Cli, tmp_path: Path, settings_file: Path) -> None:
    root = write_module(tmp_path)
    out1, out2 = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    first = cli("--settings", str(settings_file), "bundle", str(root), "-f", str(out1), "--json")
    second = cli("--settings", str(settings_file), "bundle", str(root), "-f", str(out2), "--json")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert out1.read_bytes() == out2.read_bytes()
    result = json.loads(first.stdout)
    assert result["code_digest"].startswith("sha256:") and result["config_digest"].startswith("hmac-sha256:")
    assert cli("validate", str(out1)).returncode == 0


def test_bundle_without_the_digest_key_says_which_setting_is_missing(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.settings.json"
    empty.write_text('{"Values": {}}')
    done = cli("--settings", str(empty), "bundle", str(write_module(tmp_path)))
    assert done.returncode == 1 and "DEPLOYER_CONFIG_DIGEST_KEY is missing" in done.stderr


def test_upload_then_status_shows_the_module(tmp_path: Path, settings_file: Path, capsys) -> None:
    root = write_module(tmp_path)
    assert main(["--settings", str(settings_file), "upload", str(root), "--json"]) == 0
    uploaded = json.loads(capsys.readouterr().out)
    assert uploaded["blob"].startswith("demo/") and uploaded["blob"].endswith(".tar.gz")
    assert main(["--settings", str(settings_file), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"modules": []}  # nothing ran the trigger yet


def test_status_when_storage_is_down_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                               "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;",
        "PREFECT_API_URL": "http://127.0.0.1:9/api", "DEPLOYER_CONFIG_DIGEST_KEY": KEY}}))
    done = cli("--settings", str(path), "status")
    assert done.returncode == 1
    assert "cannot reach storage" in done.stderr and "Traceback" not in done.stderr
    assert "`make dev` starts it" in done.stderr  # what README calls the daily loop
    assert "a2V5" not in done.stderr
