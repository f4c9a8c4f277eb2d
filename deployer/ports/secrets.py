"""Secrets: Key Vault references of ``.env``, read with the app's identity."""

from __future__ import annotations

from typing import Protocol

from deployer.bundle.keyvault_ref import SecretRef


class SecretResolver(Protocol):
    """Key Vault references of ``.env`` (``bundle.keyvault_ref``), read with the app's identity.
    Failures raise ``SecretUnavailable`` (the reference cannot be read: no role, no such secret,
    disabled) or ``UpstreamError`` (transient)."""

    def latest_version(self, ref: SecretRef) -> str: ...

    def value(self, ref: SecretRef) -> str: ...
