from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer.config import SETTINGS, Settings, read_one
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


#: identity-only storage (Azure): the local example reaches Azurite with its connection string
IDENTITY_STORAGE = {f"AzureWebJobsStorage__{k}" for k in ("accountName", "blobServiceUri",
                                                         "queueServiceUri", "credential", "clientId")}


def test_example_file_lists_exactly_the_settings() -> None:
    example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    assert set(example) - HOST_SETTINGS == {spec.env for spec in SETTINGS} - IDENTITY_STORAGE


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
                           "DEPLOYER_LOCK_LEASE_SECONDS": "90", "PREFECT_API_URL": "localhost",
                           "DEPLOYER_WORKER_POLL_SECONDS": "60"})
    text = str(info.value)
    for name in ("AzureWebJobsStorage is missing", "DEPLOYER_CONFIG_DIGEST_KEY is missing",
                 "DEPLOYER_MAX_BUNDLE_MB must be a positive integer", "DEPLOYER_BACKEND must be",
                 "DEPLOYER_LOCK_LEASE_SECONDS must be between 15 and 60", "PREFECT_API_URL must be",
                 "DEPLOYER_WORKER_POLL_SECONDS must be 1 to 59 seconds: Prefect shows a work queue"):
        assert name in text
    assert len(info.value.problems) == 7


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


KEY = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleQ=="


@pytest.mark.parametrize("connection", [
    "UseDevelopmentStorage=true",
    f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net",
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;",
    "BlobEndpoint=https://acct.blob.core.windows.net;QueueEndpoint=https://acct.queue.core.windows.net;"
    "SharedAccessSignature=sv=2024&sig=abc",
])
def test_storage_connection_strings_azure_accepts_are_accepted(connection: str) -> None:
    assert Settings.from_env({**GOOD, "AzureWebJobsStorage": connection}).storage_connection.reveal() == connection


@pytest.mark.parametrize(("connection", "expected"), [
    ("just-some-text", "part 1 has no '='"),
    (f"AccountName=acct;AcountKey={KEY}", "'AcountKey' is not one of its keys"),
    ("AccountName=acct", "has no credential"),
    (f"AccountKey={KEY}", "names no account"),
    (f"AccountName=a;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:99999/a", "BlobEndpoint that is not a URL with a valid port"),
    (f"AccountName=a;AccountKey={KEY};QueueEndpoint=127.0.0.1:10001", "QueueEndpoint that is not an http(s) URL"),
    (f"AccountName=a;AccountName=b;AccountKey={KEY}", "AccountName appears twice"),
    (";;", "is empty"),
])
def test_a_connection_string_that_does_not_parse_is_named_and_never_quoted(connection: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "AzureWebJobsStorage": connection})
    assert "AzureWebJobsStorage " in str(info.value)
    assert expected in str(info.value) and KEY not in str(info.value)


@pytest.mark.parametrize("url", ["http://", "http://127.0.0.1:70000/api", "127.0.0.1:4200/api", "ftp://x/api"])
def test_a_prefect_api_url_without_a_host_or_with_a_bad_port_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="PREFECT_API_URL must be an http"):
        Settings.from_env({**GOOD, "PREFECT_API_URL": url})


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("DEPLOYER_AGENT_PREFIX", "ab-", "must not end with '-' or hold '--'"),
    ("DEPLOYER_AGENT_PREFIX", "a--b", "must not end with '-' or hold '--'"),
    ("DEPLOYER_BUILD_TIMEOUT_SECONDS", "299", "must be between 300 and 28800"),
    ("DEPLOYER_BUILD_TIMEOUT_SECONDS", "28801", "must be between 300 and 28800"),
])
def test_values_that_make_requests_azure_refuses_are_refused_here(setting: str, value: str,
                                                                   expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, setting: value})
    assert f"{setting} {expected}" in str(info.value)


def test_the_health_timeout_allows_for_an_aci_cold_start() -> None:
    # a group on a cold host pulls Prefect's ~1 GB image before the worker starts: minutes
    assert Settings.from_env(GOOD).health_timeout_seconds >= 600


BASE = {k: v for k, v in GOOD.items() if k != "AzureWebJobsStorage"}


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "AzureWebJobsStorage is missing"),
    ({"AzureWebJobsStorage": GOOD["AzureWebJobsStorage"], "AzureWebJobsStorage__accountName": "pcstore"},
     "are both set"),
    ({"AzureWebJobsStorage__blobServiceUri": "https://pcstore.blob.core.windows.net"}, "go together"),
    ({"AzureWebJobsStorage__accountName": "PC_Store"}, "must be a storage account name"),
    ({"AzureWebJobsStorage__blobServiceUri": "http://127.0.0.1:10000/devstoreaccount1",
      "AzureWebJobsStorage__queueServiceUri": "https://127.0.0.1:10001/devstoreaccount1"}, "must be an https URL"),
    ({"AzureWebJobsStorage__accountName": "pcstore", "AzureWebJobsStorage__credential": "key"},
     "must be 'managedidentity'"),
])
def test_storage_is_a_connection_string_or_identity_only_never_both(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, **env})
    assert expected in str(info.value)


def test_identity_only_storage_reads_as_the_functions_host_reads_it() -> None:
    settings = Settings.from_env({**BASE, "AzureWebJobsStorage__accountName": "pcstore",
                                  "AzureWebJobsStorage__credential": "managedidentity"})
    assert settings.storage_identity
    assert settings.blob_service_url == "https://pcstore.blob.core.windows.net"
    assert settings.queue_service_url == "https://pcstore.queue.core.windows.net"
    assert not Settings.from_env(GOOD).storage_identity


def test_a_setting_app_service_left_as_an_unresolved_key_vault_reference_is_refused_by_name() -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/prefect-api-key/)"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "PREFECT_API_KEY": reference, "DEPLOYER_CONFIG_DIGEST_KEY": reference})
    problems = info.value.problems
    assert [p.split(" ", 1)[0] for p in problems] == ["PREFECT_API_KEY", "DEPLOYER_CONFIG_DIGEST_KEY"]
    assert all("unresolved Key Vault reference" in p and "Key Vault Secrets User" in p for p in problems)


def test_the_public_url_defaults_to_the_host_name_app_service_gives_the_site() -> None:
    assert Settings.from_env({**GOOD, "WEBSITE_HOSTNAME": "func-x.westeurope-01.azurewebsites.net"}).public_url == \
        "https://func-x.westeurope-01.azurewebsites.net"
    assert Settings.from_env({**GOOD, "WEBSITE_HOSTNAME": "h.example", "DEPLOYER_PUBLIC_URL": "https://mine.example"}
                             ).public_url == "https://mine.example"
    assert Settings.from_env(GOOD).public_url == ""
