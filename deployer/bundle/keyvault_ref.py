"""Key Vault references in ``.env``, in App Service's syntax:

    API_TOKEN=@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>[/<version>])
    API_TOKEN=@Microsoft.KeyVault(VaultName=<vault>;SecretName=<name>[;SecretVersion=<version>])

The value is read at deploy time with the function app's identity and handed to the agent only as
a secure value. A reference without a version is *pinned* when a bundle is accepted: the secret's
current version becomes part of the revision (and of its config digest), so the running agent
keeps what it was started with, and a secret rotated in the vault is a configuration change the
nightly check redeploys (``pipeline.secret_rotation``). A reference names no secret value, so it
may be shown; its value never is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

PREFIX = "@Microsoft.KeyVault("
#: the vault domains of the public, China and US Government clouds
VAULT_DOMAINS = (".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net")
_VAULT = re.compile(r"[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]\Z")
_SECRET = re.compile(r"[0-9a-zA-Z-]{1,127}\Z")
_VERSION = re.compile(r"[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class SecretRef:
    vault_url: str  # https://<vault>.vault.azure.net
    name: str
    version: str = ""  # empty: the latest, until pinned

    @property
    def vault(self) -> str:
        return (urlsplit(self.vault_url).hostname or "").split(".")[0]

    @property
    def uri(self) -> str:
        return f"{self.vault_url}/secrets/{self.name}" + (f"/{self.version}" if self.version else "")

    def pinned(self, version: str) -> SecretRef:
        return replace(self, version=version)

    def reference(self) -> str:
        """The ``.env`` value that names this secret (and version)."""
        return f"{PREFIX}SecretUri={self.uri})"

    def __str__(self) -> str:
        return f"secret {self.name!r} of vault {self.vault!r}"


def is_reference(value: str) -> bool:
    return value.strip().startswith(PREFIX)


def parse_reference(value: str) -> SecretRef:
    """The secret a reference names; ``ValueError`` says what is wrong with it (never quoting it
    whole: a mistyped value might be the secret itself)."""
    text = value.strip()
    if not text.endswith(")"):
        raise ValueError("a Key Vault reference ends with ')'")
    body = text[len(PREFIX):-1].strip()
    fields = {}
    for part in body.split(";"):
        key, sep, item = part.partition("=")
        if not sep or not item.strip():
            raise ValueError("a Key Vault reference is SecretUri=<uri> or "
                             "VaultName=<vault>;SecretName=<name>[;SecretVersion=<version>]")
        fields[key.strip().lower()] = item.strip()
    if "secreturi" in fields:
        if len(fields) != 1:
            raise ValueError("SecretUri stands alone in a Key Vault reference")
        return _from_uri(fields["secreturi"])
    if set(fields) - {"vaultname", "secretname", "secretversion"} or \
            not {"vaultname", "secretname"} <= set(fields):
        raise ValueError("a Key Vault reference names VaultName and SecretName (and optionally "
                         "SecretVersion), or a SecretUri")
    vault = fields["vaultname"]
    if not _VAULT.match(vault):
        raise ValueError(f"VaultName {vault!r} is not a vault name (3-24 letters, digits, '-')")
    return _checked(SecretRef(f"https://{vault.lower()}{VAULT_DOMAINS[0]}", fields["secretname"],
                              fields.get("secretversion", "")))


def _from_uri(uri: str) -> SecretRef:
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host.endswith(VAULT_DOMAINS) or parts.query or parts.port:
        raise ValueError("SecretUri must be https://<vault>.vault.azure.net/secrets/<name>[/<version>]")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) not in (2, 3) or segments[0] != "secrets":
        raise ValueError("SecretUri must be https://<vault>.vault.azure.net/secrets/<name>[/<version>]")
    return _checked(SecretRef(f"https://{host}", segments[1], segments[2] if len(segments) == 3 else ""))


def _checked(ref: SecretRef) -> SecretRef:
    if not _SECRET.match(ref.name):
        raise ValueError(f"secret name {ref.name!r} is not a Key Vault secret name "
                         "(1-127 letters, digits and '-')")
    if ref.version and not _VERSION.match(ref.version):
        raise ValueError(f"secret version {ref.version!r} is not a Key Vault version "
                         "(32 hexadecimal digits)")
    return ref
