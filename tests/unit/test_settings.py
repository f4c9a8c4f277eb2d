from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer.config import SETTINGS, Settings, load_local_settings, read_one
from deployer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
#: settings of the Functions host itself, not of the deployer
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags"}
GOOD = {
    "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=SECRETKEY==",
    "PREFECT_API_URL": "http://127.0.0.1:4200/api/",
    "PREFECT_API_KEY": "pnu_supersecret",
    "DEPLOYER_CONFIG_DIGEST_KEY": "0123456789abcdef-digest-key",
}


def test_example_file_lists_exactly_the_settings() -> None:
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    assert set(example) - HOST_SETTINGS == {spec.env for spec in SETTINGS}


def test_example_file_values_parse() -> None:
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    settings = Settings.from_env(example)
    assert settings.backend == "local" and settings.bundles_container == "bundles"


def test_defaults_fill_everything_optional() -> None:
    settings = Settings.from_env(GOOD)
    assert settings.max_bundle_mb == 200 and settings.max_bundle_entries == 10_000
    assert settings.prefect_api_url == "http://127.0.0.1:4200/api"


def test_every_missing_and_invalid_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DEPLOYER_MAX_BUNDLE_MB": "-1", "DEPLOYER_BACKEND": "gcp",
                           "DEPLOYER_LOCK_LEASE_SECONDS": "90", "PREFECT_API_URL": "localhost"})
    text = str(info.value)
    for name in ("AzureWebJobsStorage is missing", "DEPLOYER_CONFIG_DIGEST_KEY is missing",
                 "DEPLOYER_MAX_BUNDLE_MB must be a positive integer", "DEPLOYER_BACKEND must be",
                 "DEPLOYER_LOCK_LEASE_SECONDS must be between 15 and 60", "PREFECT_API_URL must be"):
        assert name in text
    assert len(info.value.problems) == 6


def test_secrets_never_show_in_repr_or_errors() -> None:
    settings = Settings.from_env(GOOD)
    shown = repr(settings) + str(settings)
    for secret in ("SECRETKEY", "pnu_supersecret", "digest-key"):
        assert secret not in shown
    assert settings.prefect_api_key.reveal() == "pnu_supersecret"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "DEPLOYER_CONFIG_DIGEST_KEY": "short-secret"})
    assert "short-secret" not in str(info.value)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(GOOD)
    with pytest.raises(AttributeError):
        settings.backend = "azure"  # type: ignore[misc]


def test_local_settings_file_fills_what_the_environment_lacks(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"DEPLOYER_BACKEND": "azure", "PREFECT_API_URL": "http://x"}}))
    merged = load_local_settings(path, {"PREFECT_API_URL": "http://from-env"})
    assert merged["DEPLOYER_BACKEND"] == "azure" and merged["PREFECT_API_URL"] == "http://from-env"
    assert load_local_settings(tmp_path / "missing.json", {"A": "1"}) == {"A": "1"}


def test_broken_local_settings_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        load_local_settings(path, {})


def test_read_one_reads_a_single_setting() -> None:
    assert read_one({}, "max_bundle_mb") == 200
    with pytest.raises(ConfigError):
        read_one({}, "config_digest_key")


def test_azure_backend_lists_all_its_missing_settings_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "DEPLOYER_BACKEND": "azure",
                           "DEPLOYER_CONFIG_DIGEST_KEY": "replace-me-with-a-random-secret-of-32-chars"})
    text = str(info.value)
    for name in ("AZURE_SUBSCRIPTION_ID is missing", "DEPLOYER_RESOURCE_GROUP is missing",
                 "DEPLOYER_LOCATION is missing", "DEPLOYER_REGISTRY is missing",
                 "DEPLOYER_AGENT_IDENTITY is missing", "placeholder"):
        assert name in text
    assert "replace-me" not in text  # the value of a secret setting is never echoed


def test_azure_backend_defaults_and_derived_values() -> None:
    settings = Settings.from_env({**GOOD, "DEPLOYER_BACKEND": "azure", "AZURE_SUBSCRIPTION_ID": "sub",
                                  "DEPLOYER_RESOURCE_GROUP": "agents", "DEPLOYER_LOCATION": "westeurope",
                                  "DEPLOYER_REGISTRY": "flowsacr", "DEPLOYER_REGISTRY_USERNAME": "u",
                                  "DEPLOYER_REGISTRY_PASSWORD": "registry-password"})
    assert settings.registry_server == "flowsacr.azurecr.io" and settings.registry_group == "agents"
    assert settings.agent_cpu == 1.0 and settings.agent_memory_gb == 1.5
    assert "registry-password" not in repr(settings)
