"""Fake Azure Key Vault secrets (data plane, 2026-04-01): vaults as state, versions appended by
``set`` (a rotation), the service's challenge authentication (a request without a bearer token
gets 401 with the ``WWW-Authenticate`` challenge the SDK answers), 403 for an identity that may not
read a secret, 404 for one that does not exist; bodies shaped as the spec's SecretBundle."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fakes.azure.http import Request, Response, SimClock
from tests.fakes.azure.swagger import spec

SPEC = "keyvault-secrets/2026-04-01/secrets.json"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
SECRET = re.compile(r"^/secrets/(?P<name>[0-9a-zA-Z-]+)(?:/(?P<version>[0-9a-f]{32}))?/?$")


@dataclass
class Version:
    version: str
    value: str
    created: int
    enabled: bool = True


@dataclass
class FakeKeyVault:
    clock: SimClock
    #: (vault host, secret name) -> versions, oldest first
    secrets: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    #: (vault host, secret name) the app's identity may not read (no Key Vault Secrets User)
    forbidden: set[tuple[str, str]] = field(default_factory=set)
    reads: list[tuple[str, str, str]] = field(default_factory=list)  # (host, name, version asked)
    #: (caller, action, resource, data action?) -> whether the caller's roles allow it
    allowed: Callable[..., bool] = lambda *args: True

    def set(self, vault: str, name: str, value: str) -> str:
        """A new version of the secret (the first, or a rotation); its version id."""
        version = uuid.uuid4().hex
        host = f"{vault}.vault.azure.net"
        self.secrets.setdefault((host, name), []).append(
            Version(version, value, int(self.clock.now().timestamp())))
        return version

    def handle(self, req: Request) -> tuple[str, Response] | None:
        if not req.host.endswith(".vault.azure.net"):
            return None
        op = spec(SPEC).find(req.method, req.path)
        kind = op.operation_id if op else f"keyvault:{req.method}"
        if not req.headers.get("authorization", "").startswith("Bearer "):
            return kind, Response(401, b"", {"WWW-Authenticate": (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"')})
        if req.query.get("api-version") != spec(SPEC).version:
            return kind, _error(400, "BadParameter", f"api-version {req.query.get('api-version')!r} is not supported")
        match = SECRET.match(req.path)
        if match is None or req.method != "GET":
            return kind, _error(405, "MethodNotAllowed", f"this fake serves GetSecret only ({req.method} {req.path})")
        name, asked = match["name"], match["version"] or ""
        self.reads.append((req.host, name, asked))
        principal = req.headers["authorization"].removeprefix("Bearer ").removeprefix("fake-aad-token.")
        if not self.allowed(principal, GET_SECRET, f"vault:{req.host.split('.')[0]}", True) or \
                (req.host, name) in self.forbidden:
            return kind, Response.of_json(403, {"error": {
                "code": "Forbidden", "message": "Caller is not authorized to perform action on resource. "
                "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                "innererror": {"code": "ForbiddenByRbac"}}})
        versions = self.secrets.get((req.host, name), [])
        found = next((v for v in versions if v.version == asked), None) if asked else \
            (versions[-1] if versions else None)
        if found is None:
            return kind, _error(404, "SecretNotFound", f"A secret with (name/id) {name}"
                                f"{'/' + asked if asked else ''} was not found in this key vault.")
        if not found.enabled:
            return kind, _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return kind, Response.of_json(200, {
            "value": found.value, "id": f"https://{req.host}/secrets/{name}/{found.version}",
            "attributes": {"enabled": True, "created": found.created, "updated": found.created,
                           "recoveryLevel": "Recoverable+Purgeable"}})


def _error(status: int, code: str, message: str) -> Response:
    return Response.of_json(status, {"error": {"code": code, "message": message}})
