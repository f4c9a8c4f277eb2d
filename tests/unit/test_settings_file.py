"""local.settings.json: found like git finds its folder, paths against its folder, malformed
files and values named, never a traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from deployer.errors import ConfigError
from deployer.settings_file import locate, merged, read_values


def write(folder: Path, document: object, name: str = "local.settings.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_the_nearest_file_in_this_folder_or_a_parent_is_found(tmp_path: Path) -> None:
    project = write(tmp_path / "project", {"Values": {}})
    deep = tmp_path / "project" / "flows" / "finance"
    deep.mkdir(parents=True)
    assert locate(None, {}, deep) == project.resolve()
    assert locate(None, {}, tmp_path / "project") == project.resolve()
    nearer = write(tmp_path / "project" / "flows", {"Values": {}})
    assert locate(None, {}, deep) == nearer.resolve()


def test_no_file_anywhere_means_the_environment_alone(tmp_path: Path) -> None:
    assert locate(None, {}, tmp_path) is None
    assert merged(None, {"A": "1"}) == {"A": "1"}


def test_a_named_file_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    write(tmp_path, {"Values": {}})  # one nearby does not stand in for the one named
    for named, environ, source in ((Path("other.json"), {}, "--settings"),
                                   (None, {"DEPLOYER_SETTINGS": "gone.json"}, "DEPLOYER_SETTINGS")):
        with pytest.raises(ConfigError) as info:
            locate(named, environ, tmp_path)
        assert source in str(info.value) and "does not exist" in str(info.value)
    with pytest.raises(ConfigError, match="is a folder"):
        locate(Path("."), {}, tmp_path)


def test_a_named_file_is_relative_to_the_current_folder_and_the_variable_names_one(tmp_path: Path) -> None:
    other = write(tmp_path / "conf", {"Values": {}}, "staging.settings.json")
    assert locate(Path("conf/staging.settings.json"), {}, tmp_path) == other.resolve()
    assert locate(None, {"DEPLOYER_SETTINGS": str(other)}, tmp_path / "conf") == other.resolve()


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"Values": {"DEPLOYER_BACKEND": "azure", "PREFECT_API_URL": "http://x"}})
    got = merged(path, {"PREFECT_API_URL": "http://from-env"})
    assert got["DEPLOYER_BACKEND"] == "azure" and got["PREFECT_API_URL"] == "http://from-env"


def test_relative_paths_resolve_against_the_files_folder_never_the_current_one(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    path = write(project, {"Values": {"DEPLOYER_VENV_DIR": "cache/venvs"}})
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    got = merged(path, {})
    assert got["DEPLOYER_HOME"] == str(project.resolve() / ".deployer")  # the default, too
    assert got["DEPLOYER_VENV_DIR"] == str(project.resolve() / "cache" / "venvs")
    absolute = merged(write(project, {"Values": {"DEPLOYER_HOME": "/srv/deployer"}}), {})
    assert absolute["DEPLOYER_HOME"] == "/srv/deployer"
    # a value from the shell is the shell's own: relative to where the command runs
    assert merged(path, {"DEPLOYER_HOME": "here"})["DEPLOYER_HOME"] == "here"


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json", "is not valid JSON"),
    ("", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('"Values"', "must hold a JSON object"),
    ('{"Values": [1]}', "'Values' must be an object of settings, not a list"),
    ('{"Values": "DEPLOYER_BACKEND=local"}', "'Values' must be an object of settings, not text"),
    ('{"Values": null}', "'Values' must be an object of settings, not null"),
    ('{"Values": {"DEPLOYER_BAKE_SECONDS": 600}}', 'Values.DEPLOYER_BAKE_SECONDS must be text (in quotes), '
                                                   'not a number: write "600"'),
    ('{"Values": {"DEPLOYER_FAST_DEPLOYS": false}}', 'not true/false: write "false"'),
    ('{"Values": {"PREFECT_API_URL": null}}', "Values.PREFECT_API_URL must be text (in quotes), not null"),
    ('{"Values": {"AzureWebJobsStorage": {"accountName": "x"}}}', "not an object"),
    ('{"IsEncrypted": true, "Values": {"A": "x"}}', "is encrypted"),
])
def test_a_malformed_file_is_an_error_that_names_the_file_and_the_key(tmp_path: Path, content: str,
                                                                      expected: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        read_values(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_every_value_that_is_not_text_is_named_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, {"Values": {"DEPLOYER_BAKE_SECONDS": 1, "DEPLOYER_BAKE_RUNS": 2, "OK": "x"}})
    with pytest.raises(ConfigError) as info:
        read_values(path)
    assert len(info.value.problems) == 2


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_bytes(b'{"Values": {"A": "\xff"}}')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_values(path)


def test_a_byte_order_mark_is_accepted_as_core_tools_does(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_bytes(b'\xef\xbb\xbf{"Values": {"A": "x"}}')
    assert read_values(path) == {"A": "x"}


def test_a_misspelt_setting_is_a_warning_with_the_likely_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, {"Values": {"DEPLOYER_BAKE_SECOND": "60", "MY_APP_SETTING": "x"}})
    with caplog.at_level(logging.WARNING):
        assert read_values(path)["DEPLOYER_BAKE_SECOND"] == "60"
    assert "did you mean DEPLOYER_BAKE_SECONDS?" in caplog.text
    assert "MY_APP_SETTING" not in caplog.text  # an app's own settings are its business


def test_the_example_modules_deploy_sh_is_the_one_deployer_new_writes() -> None:
    from deployer.scaffold import FILES

    example = Path(__file__).resolve().parents[2] / "flows" / "finance" / "deploy.sh"
    assert example.read_text() == FILES["deploy.sh"].format(name="finance", function="finance")
