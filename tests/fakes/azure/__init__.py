"""An in-process fake of the Azure endpoints the deployer uses, for the real SDK clients.

    azure = FakeAzure()
    client = ContainerInstanceManagementClient(azure.credential, "sub", transport=azure.transport())

ARM (management.azure.com): Container Instances and ACR Tasks, validated against the published
specs in ../shared/azure-specs; the registry data plane with its token exchange; the SAS storage
of build contexts and run logs. State (container groups, runs, tags) lives here and advances with
a simulated clock. Faults: latency per call, 429 with ``Retry-After``, 5xx, failed provisioning,
containers that never start, failing builds. Every call is counted by operation and logged (with
its body) so tests can check what crossed the wire.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core.credentials import AccessToken

from tests.fakes.azure.aci import FakeAci
from tests.fakes.azure.acr import FakeAcr
from tests.fakes.azure.http import FakeTransport, Request, Response, SimClock
from tests.fakes.azure.keyvault import FakeKeyVault
from tests.fakes.azure.rbac import Rbac

ARM_HOST = "management.azure.com"
REGISTER = re.compile(r"^/subscriptions/[^/]+/providers/[^/]+/register$", re.IGNORECASE)


#: what a fake token carries: the identity it was issued to (``FakeCredential.principal``)
TOKEN = "fake-aad-token."


class FakeCredential:
    """A TokenCredential of one identity (the template's names: app, agents, operator): any scope
    gets a token naming it, which the fake checks against that identity's roles (``rbac``)."""

    def __init__(self, clock: SimClock, principal: str = "app") -> None:
        self._clock = clock
        self.principal = principal
        self.requests: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.requests.append(scopes)
        expires = self._clock.now() + timedelta(hours=1)
        return AccessToken(TOKEN + self.principal, int(expires.timestamp()))

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        token = self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)


def _arm_kind(req: Request) -> str:
    from tests.fakes.azure.aci import SPEC as ACI_SPEC
    from tests.fakes.azure.acr import TASKS
    from tests.fakes.azure.swagger import spec

    for name in (ACI_SPEC, TASKS):
        op = spec(name).find(req.method, req.path)
        if op is not None:
            return op.operation_id
    return f"arm:{req.method}"


@dataclass
class Fault:
    kind: str  # an operation id, or "*" for every ARM call
    remaining: int
    status: int
    retry_after: float | None = None


def caller(req: Request) -> str:
    """The identity a request's bearer token names ("" without one)."""
    token = req.headers.get("authorization", "").removeprefix("Bearer ")
    return token[len(TOKEN):] if token.startswith(TOKEN) else ""


#: the ARM action each operation the deployer calls needs (Microsoft's resource provider
#: operations, azure-docs permissions/containers.md; see tests/data/azure-specs/rbac/README.md)
ACTIONS = {
    "ContainerGroups_Get": "Microsoft.ContainerInstance/containerGroups/read",
    "ContainerGroups_List": "Microsoft.ContainerInstance/containerGroups/read",
    "ContainerGroups_ListByResourceGroup": "Microsoft.ContainerInstance/containerGroups/read",
    "ContainerGroups_CreateOrUpdate": "Microsoft.ContainerInstance/containerGroups/write",
    "ContainerGroups_Delete": "Microsoft.ContainerInstance/containerGroups/delete",
    "Containers_ListLogs": "Microsoft.ContainerInstance/containerGroups/containers/logs/read",
    "Registries_GetBuildSourceUploadUrl": "Microsoft.ContainerRegistry/registries/listBuildSourceUploadUrl/action",
    "Registries_ScheduleRun": "Microsoft.ContainerRegistry/registries/scheduleRun/action",
    "Runs_Get": "Microsoft.ContainerRegistry/registries/runs/read",
    "Runs_List": "Microsoft.ContainerRegistry/registries/runs/read",
    "Runs_GetLogSasUrl": "Microsoft.ContainerRegistry/registries/runs/listLogSasUrl/action",
    "Runs_Cancel": "Microsoft.ContainerRegistry/registries/runs/cancel/action",
    "Providers_Register": "Microsoft.ContainerInstance/register/action",
}
ASSIGN_IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"


@dataclass
class FakeAzure:
    clock: SimClock = field(default_factory=SimClock)
    latency_seconds: float = 0.0  # simulated time each call takes
    wall_latency_seconds: float = 0.0  # real time each call takes (benchmarks), calls overlap
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, str, bytes]] = field(default_factory=list)  # (kind, method, url, body)
    timeline: list[tuple[str, datetime, int]] = field(default_factory=list)  # (kind, time, status)
    #: who may do what (the template's role assignments); None: anyone may do anything
    rbac: Rbac | None = None

    def __post_init__(self) -> None:
        self.aci = FakeAci(self.clock)
        self.acr = FakeAcr(self.clock, allowed=self._allowed)
        self.keyvault = FakeKeyVault(self.clock, allowed=self._allowed)
        self.credential = FakeCredential(self.clock)
        self._lock = threading.Lock()

    def transport(self) -> FakeTransport:
        return FakeTransport(self.handle, self.clock)

    def throttle(self, kind: str, times: int, retry_after: float = 5.0) -> None:
        self.faults.append(Fault(kind, times, 429, retry_after))

    def fail(self, kind: str, times: int, status: int = 503) -> None:
        self.faults.append(Fault(kind, times, status))

    def handle(self, req: Request) -> Response:
        if self.wall_latency_seconds:
            time.sleep(self.wall_latency_seconds)  # outside the lock: concurrent calls overlap
        with self._lock:
            self.clock.advance(self.latency_seconds)
            kind, response = self._route(req)
            self.calls[kind] += 1
            self.log.append((kind, req.method, req.url, req.body))
            self.timeline.append((kind, self.clock.now(), response.status))
            return response

    def _route(self, req: Request) -> tuple[str, Response]:
        if req.host == ARM_HOST:
            if not req.headers.get("authorization", "").startswith("Bearer "):
                return "arm:unauthenticated", Response.arm_error(401, "AuthenticationFailed", "no bearer token")
            kind = "Providers_Register" if REGISTER.match(req.path) and req.method == "POST" \
                else _arm_kind(req)
            fault = self._fault(kind)
            if fault is not None:  # throttled or failed calls are not carried out
                return kind, fault
            denied = self._authorize(kind, req)
            if denied is not None:
                return kind, denied
            if kind == "Providers_Register":
                # the function app's roles are scoped to resource groups: registering a
                # provider needs subscription rights it does not have (and must not)
                return kind, _authorization_failed(caller(req), ACTIONS[kind],
                                                   f"/subscriptions/{req.path.split('/')[2]}")
            found = self.aci.handle(req) or self.acr.handle_arm(req)
            if found is not None and kind == "ContainerGroups_CreateOrUpdate" and found[1].status < 300:
                self._pull_with_group_identity(req)
            if found is None:
                return "arm:unknown", Response.arm_error(404, "InvalidResourceType", req.path)
            return found
        for handler in (self.acr.handle_storage, self.acr.handle_registry, self.keyvault.handle):
            found = handler(req)
            if found is not None:
                return found
        return "unknown-host", Response(404, f"no fake for {req.host}".encode())

    def _allowed(self, principal: str, action: str, resource: str, data: bool = False) -> bool:
        """``resource``: an ARM id, or a name of ``rbac.SCOPES`` (the registry's data plane),
        or ``vault:<name>`` (a Key Vault's data plane)."""
        if self.rbac is None:
            return True
        if resource.startswith("vault:"):
            vault = self.rbac.scopes.get("vault", "")
            name = resource.split(":", 1)[1]
            resource = vault if vault.lower().endswith(f"/vaults/{name.lower()}") else f"/vaults/{name}"
        resource = self.rbac.scopes.get(resource, resource)
        return self.rbac.allows(principal, action, resource, data=data)

    def _authorize(self, kind: str, req: Request) -> Response | None:
        """ARM's authorization of the caller: the operation's action at the resource, and for a
        container group that gets a user-assigned identity, the right to assign it."""
        if self.rbac is None:
            return None
        principal, resource = caller(req), req.path
        action = ACTIONS.get(kind)
        if action is None:
            raise AssertionError(f"the fake knows no RBAC action for {kind} ({req.method} {req.path})")
        if not self._allowed(principal, action, resource):
            return _authorization_failed(principal, action, resource)
        if kind == "ContainerGroups_CreateOrUpdate":
            identities = ((req.json() or {}).get("identity") or {}).get("userAssignedIdentities") or {}
            linked = [i for i in identities if not self._allowed(principal, ASSIGN_IDENTITY, i)]
            if linked:
                return Response.arm_error(403, "LinkedAuthorizationFailed", (
                    f"The client '{principal}' has permission to perform action '{action}' on scope "
                    f"'{resource}'; however, it does not have permission to perform action(s) "
                    f"'{ASSIGN_IDENTITY}' on the linked scope(s) '{', '.join(linked)}' (respectively) "
                    "or the linked scope(s) are invalid."))
        return None

    def _pull_with_group_identity(self, req: Request) -> None:
        """ACI pulls the group's image with the identity its imageRegistryCredentials name: one
        that may not pull from the registry leaves the container waiting (ErrImagePull)."""
        if self.rbac is None:
            return
        body = req.json() or {}
        agents = self.rbac.scopes.get("agent-identity", "").lower()
        registry = self.rbac.scopes.get("registry", "")
        for credential in (body.get("properties") or {}).get("imageRegistryCredentials") or []:
            principal = "agents" if str(credential.get("identity", "")).lower() == agents else ""
            if principal and not self._allowed(principal, "Microsoft.ContainerRegistry/registries/pull/read", registry):
                group = self.aci.groups[(req.path.split("/")[4], req.path.rstrip("/").split("/")[-1])]
                group.fate = "never-starts"
                group.waiting_because = (f"Failed to pull image \"{body['properties']['containers'][0]['properties']['image']}\": "
                                         "unauthorized: authentication required")

    def _fault(self, kind: str) -> Response | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.kind in (kind, "*"):
                fault.remaining -= 1
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                code = "TooManyRequests" if fault.status == 429 else "InternalServerError"
                return Response.arm_error(fault.status, code, "injected fault", headers)
        return None

    def peak(self, kind: str, window: timedelta) -> int:
        """The most accepted (non-error) calls of ``kind`` inside any ``window`` (simulated time)."""
        times = [t for k, t, status in self.timeline if k == kind and status < 400]
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def bodies(self) -> bytes:
        return b"\n".join(body for *_, body in self.log)


def _authorization_failed(principal: str, action: str, scope: str) -> Response:
    return Response.arm_error(403, "AuthorizationFailed", (
        f"The client '{principal or 'anonymous'}' with object id '{principal}' does not have "
        f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials."))
