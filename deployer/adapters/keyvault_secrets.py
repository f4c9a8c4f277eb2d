"""``SecretResolver`` on Azure Key Vault (azure-keyvault-secrets, API 2026-04-01): the secrets
``.env`` references, read with ``DefaultAzureCredential`` (the function app's managed identity;
``az login`` for the CLI), one client per vault, built on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from deployer.bundle.keyvault_ref import SecretRef
from deployer.errors import SecretUnavailable, UpstreamError

_HINT = ("grant the function app's identity 'Key Vault Secrets User' on the vault (or the secret), "
         "or fix the reference in .env")


class KeyVaultSecretResolver:
    def __init__(self, credential: Any = None, transport: Callable[[], Any] | None = None) -> None:
        self._credential = credential
        self._transport = transport

    @functools.cached_property
    def credential(self) -> Any:
        if self._credential is not None:
            return self._credential
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(exclude_interactive_browser_credential=True)

    @functools.cache  # noqa: B019  (one client per vault for the resolver's life)
    def _client(self, vault_url: str) -> Any:
        from azure.keyvault.secrets import SecretClient

        options = {"transport": self._transport()} if self._transport else {}
        return SecretClient(vault_url, self.credential, **options)

    def latest_version(self, ref: SecretRef) -> str:
        return str(self._get(ref.pinned("")).properties.version)

    def value(self, ref: SecretRef) -> str:
        return str(self._get(ref).value or "")

    def _get(self, ref: SecretRef) -> Any:
        client = self._client(ref.vault_url)
        try:
            secret = client.get_secret(ref.name, ref.version or None)
        except ResourceNotFoundError as exc:
            raise SecretUnavailable(f"{ref}{' version ' + ref.version if ref.version else ''} does "
                                    "not exist", hint="create it, or fix the reference in .env") from exc
        except ClientAuthenticationError as exc:
            raise UpstreamError(f"read {ref}: authentication failed",
                                hint="check the app's managed identity (or az login)") from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise UpstreamError(f"read {ref}: the vault could not be reached ({type(exc).__name__})") from exc
        except HttpResponseError as exc:
            code = getattr(getattr(exc, "error", None), "code", None) or exc.reason or ""
            if exc.status_code in (401, 403):
                raise SecretUnavailable(f"read {ref}: the identity may not read it ({exc.status_code} "
                                        f"{code})".rstrip(), hint=_HINT) from exc
            if exc.status_code == 400 or code == "SecretDisabled":
                raise SecretUnavailable(f"read {ref}: Key Vault refused ({exc.status_code} {code})",
                                        hint="enable the secret or fix the reference") from exc
            raise UpstreamError(f"read {ref}: Key Vault answered {exc.status_code} {code}".rstrip()) from exc
        if secret.properties.enabled is False:
            raise SecretUnavailable(f"{ref} is disabled", hint="enable it in the vault")
        return secret
