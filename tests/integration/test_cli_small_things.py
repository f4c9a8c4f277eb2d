"""The small things a newcomer trips over, in-process as they type them: a mistyped command,
folder or number, a name `new` refuses, a command run outside a project. Each says what is wrong
and what they likely meant, with the exit code of its kind (2: the command line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cli


def test_a_mistyped_command_suggests_the_closest_one(cli: Cli, tmp_path: Path) -> None:
    done = cli("stauts", cwd=tmp_path)
    assert done.returncode == 2 and "did you mean deployer status?" in done.stderr


def test_new_refuses_a_bad_name_and_an_existing_folder_alike_and_its_scaffold_validates_clean(
        cli: Cli, tmp_path: Path) -> None:
    bad = cli("new", "Bad Name", cwd=tmp_path)
    assert bad.returncode == 2 and "module name 'Bad Name' is invalid" in bad.stderr
    assert "fix the files above" not in bad.stderr
    assert cli("new", "good", cwd=tmp_path).returncode == 0
    again = cli("new", "good", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    valid = cli("validate", "flows/good", cwd=tmp_path)
    assert valid.returncode == 0 and "note:" not in valid.stdout, valid.stdout  # nothing to fix in what it wrote


@pytest.mark.parametrize("command", ["validate", "bundle", "upload", "deploy"])
def test_a_mistyped_module_folder_says_so_first_and_suggests_the_one_that_exists(
        cli: Cli, tmp_path: Path, command: str) -> None:
    assert cli("new", "good", cwd=tmp_path).returncode == 0
    for typo in ("flows/god", "good"):  # outside a project: the path is said before the settings
        done = cli(command, typo, cwd=tmp_path)
        assert done.returncode == 2 and f"{typo} does not exist" in done.stderr, done.stderr
        assert "did you mean flows/good?" in done.stderr and "fix the files above" not in done.stderr


def test_a_folder_whose_name_is_no_module_name_says_to_rename_the_folder(cli: Cli, tmp_path: Path) -> None:
    assert cli("new", "good", cwd=tmp_path).returncode == 0
    (tmp_path / "flows" / "good").rename(tmp_path / "flows" / "Good")
    text = (tmp_path / "flows" / "Good" / "Dockerfile").read_text().replace("flows/good", "flows/Good")
    (tmp_path / "flows" / "Good" / "Dockerfile").write_text(text)
    done = cli("validate", "flows/Good", cwd=tmp_path)
    assert done.returncode == 1 and "rename it" in done.stderr and "fix the files above" not in done.stderr


def test_outside_a_project_it_says_no_settings_file_was_found(cli: Cli, tmp_path: Path) -> None:
    for command in (["status"], ["history", "demo"], ["run", "demo"], ["upload", "."]):
        done = cli(*command, cwd=tmp_path)
        assert done.returncode == 1 and f"no local.settings.json found in {tmp_path} or above" in done.stderr, \
            (command, done.stderr)
        assert "PREFECT_API_URL is missing" not in done.stderr


@pytest.mark.parametrize("argv", [["status", "--watch", "-1"], ["status", "-w", "0"], ["run", "demo", "--timeout", "0"],
                                  ["history", "demo", "--limit", "-3"], ["logs", "demo", "--tail", "0"],
                                  ["upload", "flows/x", "--timeout", "nan"], ["dev", "--poll", "-2"]])
def test_a_number_that_makes_no_sense_is_refused_before_anything_runs(cli: Cli, tmp_path: Path, argv: list[str]) -> None:
    done = cli(*argv, cwd=tmp_path)
    assert done.returncode == 2 and "is not a" in done.stderr, done.stderr
