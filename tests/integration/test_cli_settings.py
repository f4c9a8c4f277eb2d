"""Where the CLI finds its settings: the nearest local.settings.json above the current folder
(as git finds its folder), paths in it against its own folder, and deploy.sh from anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import write_module
from tests.integration.conftest import KEY

ROOT = Path(__file__).resolve().parents[2]
DEPLOYER = Path(sys.executable).parent / "deployer"


@pytest.fixture
def project(tmp_path: Path, storage_connection: str, prefect_api: str) -> Path:
    """A project folder: its settings file (DEPLOYER_HOME left to its default, .deployer) and
    a module under flows/ with the deploy.sh every module gets."""
    tag = os.urandom(5).hex()
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "local.settings.json").write_text(json.dumps({"Values": {
        "AzureWebJobsStorage": storage_connection, "PREFECT_API_URL": prefect_api,
        "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_BUNDLES_CONTAINER": f"bundles-{tag}",
        "DEPLOYER_STATE_CONTAINER": f"state-{tag}", "DEPLOYER_REQUEST_QUEUE": f"requests-{tag}"}}))
    module = write_module(folder / "flows", f"m{tag}")
    shutil.copy(ROOT / "flows" / "finance" / "deploy.sh", module / "deploy.sh")
    return folder


def run(argv: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not (Path(p) / "deployer").exists())  # no deployer on PATH
    return subprocess.run(argv, cwd=cwd, env={**env, **extra}, capture_output=True, text=True, timeout=180)


def test_status_from_a_module_folder_reads_the_projects_settings_and_home(project: Path) -> None:
    module = next((project / "flows").iterdir())
    for cwd in (project, module):
        done = run([str(DEPLOYER), "status", "--json"], cwd)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"modules": []}
    assert not (module / ".deployer").exists()  # state is the project's, wherever the command ran


def test_outside_any_project_that_is_what_it_says(tmp_path: Path) -> None:
    done = run([str(DEPLOYER), "status"], tmp_path)
    assert done.returncode == 1 and f"no local.settings.json found in {tmp_path} or above" in done.stderr
    assert "AzureWebJobsStorage is missing" not in done.stderr  # not the list of every setting
    done = run([str(DEPLOYER), "status"], tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert done.returncode == 1 and "AzureWebJobsStorage is missing" in done.stderr  # configured by the environment
    assert "Traceback" not in done.stderr


def test_a_named_settings_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    done = run([str(DEPLOYER), "--settings", "nope.json", "status"], tmp_path)
    assert done.returncode == 1 and "the settings file nope.json (--settings) does not exist" in done.stderr
    done = run([str(DEPLOYER), "status"], tmp_path, DEPLOYER_SETTINGS=str(tmp_path / "gone.json"))
    assert done.returncode == 1 and "(DEPLOYER_SETTINGS) does not exist" in done.stderr


def test_a_malformed_settings_file_is_named_without_a_traceback(project: Path) -> None:
    (project / "local.settings.json").write_text('{"Values": {"DEPLOYER_BAKE_SECONDS": 600}}')
    done = run([str(DEPLOYER), "status"], project / "flows")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "local.settings.json: Values.DEPLOYER_BAKE_SECONDS must be text" in done.stderr


@pytest.mark.parametrize("where", ["module", "root"])
def test_deploy_sh_works_from_its_own_folder_and_from_anywhere(project: Path, where: str) -> None:
    module = next((project / "flows").iterdir())
    # no deployer on PATH and no DEPLOYER: the script finds the project's .venv/bin/deployer
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "deployer").symlink_to(DEPLOYER)
    done = run(["bash", str(module / "deploy.sh"), "--dry-run", "--json"],
               module if where == "module" else Path("/"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["module"] == module.name and plan["operations"], plan
    assert not (module / ".deployer").exists()


def test_deploy_sh_without_any_deployer_says_what_to_do(tmp_path: Path) -> None:
    module = write_module(tmp_path, "lonely")
    shutil.copy(ROOT / "flows" / "finance" / "deploy.sh", module / "deploy.sh")
    done = run(["bash", str(module / "deploy.sh")], module)
    assert done.returncode == 1 and "no deployer found" in done.stderr


def test_dev_refuses_a_port_out_of_range_or_in_use_before_any_trigger_runs(project: Path) -> None:
    import socket

    done = run([str(DEPLOYER), "dev", "--port", "70000"], project)
    assert done.returncode == 2 and "70000 is not a port: use 0-65535" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run([str(DEPLOYER), "dev", "--app", str(ROOT / "function_app.py"), "--port", str(port)], project)
    assert done.returncode == 2, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr and "Traceback" not in done.stderr
