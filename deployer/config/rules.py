"""What only makes sense together, across settings (``Settings.from_env`` adds these problems to
the others, so that every problem is said at once)."""

from __future__ import annotations

from collections.abc import Mapping


def storage_rules(env: Mapping[str, str]) -> list[str]:
    """One way to the storage account: a connection string, or an identity-only account."""
    connection = bool(env.get("AzureWebJobsStorage"))
    account = bool(env.get("AzureWebJobsStorage__accountName"))
    uris = [bool(env.get(f"AzureWebJobsStorage__{k}ServiceUri")) for k in ("blob", "queue")]
    if not connection and not account and not any(uris):
        return ["AzureWebJobsStorage is missing: the storage account's connection string "
                "(Azurite locally), or AzureWebJobsStorage__accountName for identity-only access"]
    if connection and (account or any(uris)):
        return ["AzureWebJobsStorage and AzureWebJobsStorage__* are both set: use the connection "
                "string or the identity-only settings, not both"]
    if not connection and not account and not all(uris):
        return ["AzureWebJobsStorage__blobServiceUri and __queueServiceUri go together (the "
                "deployer uses blobs and a queue), or set AzureWebJobsStorage__accountName"]
    return []


def azure_rules(env: Mapping[str, str]) -> list[str]:
    """What only makes sense together, for the azure backend."""
    problems = []
    if (env.get("DEPLOYER_CONFIG_DIGEST_KEY") or "").startswith("replace-me"):
        problems.append("DEPLOYER_CONFIG_DIGEST_KEY still has the example's placeholder: set a "
                        "random secret (e.g. `openssl rand -hex 32`)")
    if not env.get("DEPLOYER_AGENT_IDENTITY") and not (
            env.get("DEPLOYER_REGISTRY_USERNAME") and env.get("DEPLOYER_REGISTRY_PASSWORD")):
        problems.append("DEPLOYER_AGENT_IDENTITY is missing: agents need a user-assigned identity "
                        "with AcrPull (or, as a fallback, DEPLOYER_REGISTRY_USERNAME and "
                        "DEPLOYER_REGISTRY_PASSWORD)")
    return problems
