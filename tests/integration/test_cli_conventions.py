"""The CLI fits its ecosystem: --version, global options before or after the command,
--output json|table next to --json, and in JSON mode every failure is one JSON document on
stdout, with the same exit codes for every command (0 ok, 1 failure, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import module_files, write_module
from tests.integration.conftest import Cli
from tests.integration.test_cli import settings_file  # noqa: F401  (a fixture)


def test_version_prints_the_installed_version(cli: Cli) -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("deployer 0.")


def test_global_options_work_after_the_command(cli: Cli, tmp_path: Path, settings_file: Path) -> None:  # noqa: F811
    before = cli("--settings", str(settings_file), "status", "--json")
    after = cli("status", "--json", "--settings", str(settings_file), "--debug")
    assert before.returncode == after.returncode == 0, after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) == {"modules": []}


def test_output_json_is_json_and_output_table_is_for_people(cli: Cli, tmp_path: Path) -> None:
    root = write_module(tmp_path)
    as_json = cli("validate", str(root), "--output", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["module"] == "demo"
    assert json.loads(cli("validate", str(root), "-o", "json").stdout) == json.loads(as_json.stdout)
    table = cli("validate", str(root), "--output", "table")
    assert table.returncode == 0 and not table.stdout.lstrip().startswith("{")
    assert cli("validate", str(root), "--output", "yaml").returncode == 2


def failing(tmp_path: Path, settings: Path) -> dict[str, tuple[list[str], int, str]]:
    bad = write_module(tmp_path / "bad", files=module_files(changes={"Dockerfile": None}))
    s = ["--settings", str(settings)]
    return {
        "validate a bad module": (["validate", str(bad)], 1, "bundle_invalid"),
        "validate a missing path": (["validate", str(tmp_path / "nope")], 2, "usage_error"),
        "validate without a path": (["validate"], 2, "usage_error"),
        "an unknown option": (["status", "--frobnicate"], 2, "usage_error"),
        "bundle without the key": (["--settings", str(_empty(tmp_path)), "bundle", str(bad)], 1, "config_error"),
        "status of an unknown module": ([*s, "status", "no-such-module"], 1, "not_found"),
        "history of an unknown module": ([*s, "history", "no-such-module"], 1, "not_found"),
        "logs of an unknown module": ([*s, "logs", "no-such-module"], 1, "not_found"),
        "rollback of an unknown module": ([*s, "rollback", "no-such-module"], 1, "not_found"),
        "remove of an unknown module": ([*s, "remove", "no-such-module", "--dry-run"], 1, "not_found"),
        "deploy of a bad module": ([*s, "deploy", str(bad)], 1, "bundle_invalid"),
        "a missing settings file": (["--settings", str(tmp_path / "gone.json"), "status"], 1, "config_error"),
    }


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.settings.json"
    path.write_text('{"Values": {}}')
    return path


CASES = ["validate a bad module", "validate a missing path", "validate without a path", "an unknown option",
         "bundle without the key", "status of an unknown module", "history of an unknown module",
         "logs of an unknown module", "rollback of an unknown module", "remove of an unknown module",
         "deploy of a bad module",
         "a missing settings file"]


@pytest.mark.parametrize("case", CASES)
def test_every_failure_in_json_mode_is_one_json_document_with_the_right_exit_code(
        cli: Cli, case: str, tmp_path: Path, settings_file: Path) -> None:  # noqa: F811
    argv, code, kind = failing(tmp_path, settings_file)[case]
    done = cli(*argv, "--json")
    assert done.returncode == code, (done.stdout, done.stderr)
    document = json.loads(done.stdout)  # the whole of stdout: one document
    assert document["ok"] is False and document["error"]["code"] == kind, document
    assert document["error"]["message"] and "Traceback" not in done.stderr
    people = cli(*argv)  # the same failure for people: same exit code, nothing on stdout
    assert people.returncode == code and people.stdout == "" and "error:" in people.stderr


@pytest.mark.parametrize("as_json", [True, False])
def test_status_watch_shows_it_again_until_interrupted(settings_file: Path, as_json: bool) -> None:  # noqa: F811
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs"))}
    argv = [sys.executable, "-m", "deployer", "--settings", str(settings_file), "status", "--watch", "0.5",
            *(["--json"] if as_json else [])]
    # as a terminal starts it: Ctrl-C delivered (a shell starts background jobs, a CI runner
    # maybe, with SIGINT ignored, and a child inherits that)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(6)  # start-up, then several refreshes
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    if as_json:
        lines = stdout.splitlines()
        assert len(lines) >= 2 and all(json.loads(line) == {"modules": []} for line in lines)
    else:
        assert "no modules yet" in stdout and "Traceback" not in stderr
