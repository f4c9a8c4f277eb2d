"""The same cases against the in-memory ``FakeSecrets`` and the Key Vault adapter (the real
azure-keyvault-secrets client over the fake Key Vault, challenge authentication included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from deployer.bundle.keyvault_ref import SecretRef, parse_reference
from deployer.errors import SecretUnavailable
from tests.fakes.platform import FakeSecrets

VAULT = "https://kv-demo.vault.azure.net"


class Vault:
    """A resolver and a way to write secrets into what it reads."""

    def __init__(self, resolver: Any, store: Any) -> None:
        self.resolver, self.store = resolver, store

    def set(self, name: str, value: str) -> str:
        return str(self.store.set("kv-demo", name, value))

    def forbid(self, name: str) -> None:
        host = "kv-demo.vault.azure.net" if not isinstance(self.store, FakeSecrets) else VAULT
        self.store.forbidden.add((host, name))


@pytest.fixture(params=["fake", "keyvault"])
def vault(request: pytest.FixtureRequest) -> Iterator[Vault]:
    if request.param == "fake":
        fake = FakeSecrets()
        yield Vault(fake, fake)
        return
    from deployer.adapters.keyvault_secrets import KeyVaultSecretResolver
    from tests.fakes.azure import FakeAzure

    azure = FakeAzure()
    yield Vault(KeyVaultSecretResolver(credential=azure.credential, transport=azure.transport), azure.keyvault)
    assert ("https://vault.azure.net/.default",) in azure.credential.requests  # the challenge's scope


def test_the_latest_version_and_a_pinned_value(vault: Vault) -> None:
    first = vault.set("api-token", "one")
    second = vault.set("api-token", "two")  # rotated
    ref = SecretRef(VAULT, "api-token")
    assert vault.resolver.latest_version(ref) == second
    assert vault.resolver.value(ref.pinned(first)) == "one"
    assert vault.resolver.value(ref.pinned(second)) == "two"


def test_a_missing_secret_or_version_is_unavailable_and_named(vault: Vault) -> None:
    vault.set("api-token", "x")
    with pytest.raises(SecretUnavailable) as info:
        vault.resolver.latest_version(SecretRef(VAULT, "nope"))
    assert "'nope'" in info.value.message and "'kv-demo'" in info.value.message
    with pytest.raises(SecretUnavailable):
        vault.resolver.value(SecretRef(VAULT, "api-token", "0" * 32))


def test_a_secret_the_identity_may_not_read_is_unavailable_without_its_value(vault: Vault) -> None:
    vault.set("db-password", "hunter2-value")
    vault.forbid("db-password")
    with pytest.raises(SecretUnavailable) as info:
        vault.resolver.latest_version(parse_reference(f"@Microsoft.KeyVault(SecretUri={VAULT}/secrets/db-password)"))
    assert "may not read" in info.value.message and "hunter2" not in str(info.value)
