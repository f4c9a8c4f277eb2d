"""infra/ (Bicep, for `azd up`) stays in step with the code: every file parses, the app gets every
setting local.settings.json.example lists (but the named local-only ones), each literal value is
one the deployer accepts, and the review's findings stay fixed (the cleanup schedule is set, the
ACR webhook has no scope, storage is identity only, the Event Grid subscription waits for the key)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
#: in the example, not in Azure, and why
LOCAL_ONLY = {
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption refuses it: the runtime is functionAppConfig.runtime",
    "AzureWebJobsStorage": "identity only in Azure: AzureWebJobsStorage__accountName/__credential",
    "DEPLOYER_HOME": "the local backend's folder",
    "DEPLOYER_VENV_DIR": "the local backend's virtualenvs",
    "DEPLOYER_REGISTRY_USERNAME": "the agents pull with their identity; no registry user exists",
    "DEPLOYER_REGISTRY_PASSWORD": "the agents pull with their identity; no registry password exists",
}
#: in Azure, not in the example, and why
AZURE_ONLY = {
    "AzureWebJobsStorage__accountName": "identity-only storage (shared keys are off)",
    "AzureWebJobsStorage__credential": "identity-only storage",
    "AzureWebJobsStorage__clientId": "identity-only storage, with the app's user-assigned identity",
    "AZURE_CLIENT_ID": "DefaultAzureCredential's managed identity: the app's user-assigned one",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry to the environment's Application Insights",
}


def _parse(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


def _app_settings() -> dict[str, Any]:
    app = _parse(INFRA / "resources.bicep")["resources"]["app"]
    return {s["name"]: s["value"] for s in app["config"]["properties"]["siteConfig"]["appSettings"]}


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_bicep_file_parses(path: Path) -> None:
    assert _parse(path)


def test_the_app_gets_every_setting_of_the_example_but_the_local_ones() -> None:
    example = set(json.loads((ROOT / "local.settings.json.example").read_text())["Values"])
    assert set(LOCAL_ONLY) <= example
    assert set(_app_settings()) == (example - set(LOCAL_ONLY)) | set(AZURE_ONLY)


def test_the_templates_literal_values_are_ones_the_deployer_accepts() -> None:
    settings = _app_settings()
    # pycep gives a reference (prefectApiUrl) and a literal ('azure') alike: read quotes from the source
    source = (INFRA / "resources.bicep").read_text()
    quoted = dict(re.findall(r"\{ name: '([^']+)', value: '([^'$]*)' \}", source))
    literal = {k: v for k, v in quoted.items() if k in settings}
    stand_ins = {k: "x" * 32 for k in settings if k not in literal}
    stand_ins.update({"AzureWebJobsStorage__accountName": "pcstore", "PREFECT_API_URL": "https://api.prefect.cloud/api",
                      "AZURE_SUBSCRIPTION_ID": "5f1c6f0a-9d3e-4b8e-a6f1-0c2d3e4f5a6b",
                      "DEPLOYER_RESOURCE_GROUP": "rg-x-agents", "DEPLOYER_LOCATION": "westeurope",
                      "DEPLOYER_REGISTRY": "crx", "DEPLOYER_REGISTRY_RESOURCE_GROUP": "rg-x",
                      "DEPLOYER_REGISTRY_LOGIN_SERVER": "crx.azurecr.io",
                      "DEPLOYER_AGENT_IDENTITY": "/subscriptions/s/resourceGroups/rg/providers/"
                      "Microsoft.ManagedIdentity/userAssignedIdentities/id",
                      "DEPLOYER_AGENT_IDENTITY_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
                      "DEPLOYER_PUBLIC_URL": "https://func-x.azurewebsites.net",
                      "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"})
    parsed = Settings.from_env({**stand_ins, **literal})
    assert parsed.backend == "azure" and parsed.storage_identity and parsed.cleanup_schedule
    # secrets reach the app as Key Vault references only
    for name in ("PREFECT_API_KEY", "DEPLOYER_CONFIG_DIGEST_KEY", "DEPLOYER_WEBHOOK_TOKEN"):
        assert str(settings[name]).startswith("@Microsoft.KeyVault(SecretUri="), name


def test_storage_is_identity_only_and_the_registry_has_no_admin_user() -> None:
    resources = _parse(INFRA / "resources.bicep")["resources"]
    storage = resources["storage"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["allowBlobPublicAccess"] is False
    assert resources["registry"]["config"]["properties"]["adminUserEnabled"] is False
    cache = resources["prefectCache"]["config"]["properties"]
    assert cache["sourceRepository"] == "docker.io/prefecthq/prefect"


def test_parameters_file_fills_every_parameter_without_a_default() -> None:
    params = _parse(INFRA / "main.bicep")["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    required = {name for name, p in params.items() if p.get("default") is None}
    assert required <= set(given) <= set(params)


def test_azd_hooks_exist_parse_and_wire_what_needs_the_published_app() -> None:
    azure = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert azure["services"]["app"] == {"project": ".", "language": "python", "host": "function"}
    for hook in ("preprovision", "postdeploy", "postdown"):
        script = ROOT / azure["hooks"][hook]["posix"]["run"]
        assert script.is_file()
        subprocess.run(["sh", "-n", str(script)], check=True)
    post = (INFRA / "hooks" / "postdeploy.sh").read_text()
    assert "systemKeys.blobs_extension" in post and "sleep" in post  # waits for the key
    assert "az acr webhook create" in post and "--scope" not in post
    down = (INFRA / "hooks" / "postdown.sh").read_text()  # custom roles outlive the groups
    assert "AZURE_BUILD_RUNNER_ROLE AZURE_AGENT_MANAGER_ROLE" in down
    main = (INFRA / "main.bicep").read_text()
    # unique per tenant: the environment name and the subscription
    assert "'ACR build runner (${roleSuffix})'" in main and "'ACI agent manager (${roleSuffix})'" in main
    assert "uniqueString(subscription().id)" in main and "output AZURE_BUILD_RUNNER_ROLE" in main
    pre = (INFRA / "hooks" / "preprovision.sh").read_text()
    assert "Microsoft.ContainerInstance" in pre and "az provider register" in pre


def test_no_document_tells_anyone_to_scope_the_webhook() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert not re.search(r"acr webhook create[^\n]*(\\\n[^\n]*)*--scope", doc.read_text()), doc


def test_the_azd_environment_holds_every_setting_the_cli_needs() -> None:
    """postdeploy writes the CLI's settings from the azd environment: the template's outputs plus
    what the environment holds itself (set by the user, the preprovision hook, or azd)."""
    from deployer.config import SETTINGS

    outputs = set(_parse(INFRA / "main.bicep")["outputs"])
    held = {"PREFECT_API_URL", "PREFECT_API_KEY", "DEPLOYER_CONFIG_DIGEST_KEY", "DEPLOYER_WEBHOOK_TOKEN",
            "AZURE_SUBSCRIPTION_ID"}
    required = {s.env for s in SETTINGS if s.default is None} | {"AzureWebJobsStorage__accountName",
                                                               "DEPLOYER_BACKEND", "DEPLOYER_AGENT_IDENTITY",
                                                               "DEPLOYER_AGENT_IDENTITY_CLIENT_ID",
                                                               "DEPLOYER_BASE_IMAGE_REGISTRY"}
    assert required <= outputs | held, required - outputs - held


#: siteConfig properties ARM refuses on a Flex Consumption site, even null (error 51021;
#: microsoft/azure-pipelines-tasks#21032), and what Microsoft's Flex samples leave out too
FLEX_REFUSED = {"ftpsstate", "use32bitworkerprocess", "netframeworkversion", "prewarmedinstancecount",
                "functionsruntimescalemonitoringenabled", "http20enabled"}


def test_the_flex_app_sets_no_site_property_arm_refuses_on_flex() -> None:
    resources = _parse(INFRA / "resources.bicep")["resources"]
    flex = [r for r in resources.values() if isinstance(r, dict)
            and "functionAppConfig" in (r.get("config", {}).get("properties") or {})]
    assert len(flex) == 1
    site_config = flex[0]["config"]["properties"]["siteConfig"]
    assert {k.lower() for k in site_config} & FLEX_REFUSED == set()
    assert "FUNCTIONS_WORKER_RUNTIME" not in _app_settings()  # Flex takes the runtime from functionAppConfig


def test_the_app_identity_has_its_roles_before_the_site_exists() -> None:
    """Key Vault references resolve at creation only if the identity can read the vault then."""
    resources = _parse(INFRA / "resources.bicep")["resources"]
    app = resources["app"]["config"]
    assert app["identity"]["type"] == "UserAssigned"
    assert "appIdentity" in str(app["properties"]["keyVaultReferenceIdentity"])
    assert {"appSecrets", "appBlobs", "appQueues"} <= {str(d) for d in app["dependsOn"]}


def test_hooks_name_the_azd_environments_subscription_and_the_apps_own_host_name() -> None:
    for script in sorted((INFRA / "hooks").glob("*.sh")):
        calls = [line for line in script.read_text().splitlines()
                 if not line.lstrip().startswith("#") and re.search(r"(^|[\s(])az ", line)]
        assert calls, script
        assert all("--subscription" in line for line in calls if re.search(r"\baz (?!ad\b)", line)), script
    post = (INFRA / "hooks" / "postdeploy.sh").read_text()
    assert "azurewebsites.net" not in post and "AZURE_FUNCTION_APP_URL" in post
    azd = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert azd["requiredVersions"]["azd"].startswith(">=")
