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

ARM_HOST = "management.azure.com"
REGISTER = re.compile(r"^/subscriptions/[^/]+/providers/[^/]+/register$", re.IGNORECASE)


class FakeCredential:
    """A TokenCredential: any scope gets a token (the fake checks that one is sent)."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self.requests: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.requests.append(scopes)
        expires = self._clock.now() + timedelta(hours=1)
        return AccessToken("fake-aad-token", int(expires.timestamp()))

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


@dataclass
class FakeAzure:
    clock: SimClock = field(default_factory=SimClock)
    latency_seconds: float = 0.0  # simulated time each call takes
    wall_latency_seconds: float = 0.0  # real time each call takes (benchmarks), calls overlap
    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, str, bytes]] = field(default_factory=list)  # (kind, method, url, body)
    timeline: list[tuple[str, datetime, int]] = field(default_factory=list)  # (kind, time, status)

    def __post_init__(self) -> None:
        self.aci = FakeAci(self.clock)
        self.acr = FakeAcr(self.clock)
        self.keyvault = FakeKeyVault(self.clock)
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
            kind = _arm_kind(req)
            fault = self._fault(kind)
            if fault is not None:  # throttled or failed calls are not carried out
                return kind, fault
            if REGISTER.match(req.path) and req.method == "POST":
                # the function app's roles are scoped to resource groups: registering a
                # provider needs subscription rights it does not have (and must not)
                return "Providers_Register", Response.arm_error(
                    403, "AuthorizationFailed", "The client does not have authorization to perform "
                    "action 'Microsoft.ContainerInstance/register/action' over scope "
                    f"'/subscriptions/{req.path.split('/')[2]}'.")
            found = self.aci.handle(req) or self.acr.handle_arm(req)
            if found is None:
                return "arm:unknown", Response.arm_error(404, "InvalidResourceType", req.path)
            return found
        for handler in (self.acr.handle_storage, self.acr.handle_registry, self.keyvault.handle):
            found = handler(req)
            if found is not None:
                return found
        return "unknown-host", Response(404, f"no fake for {req.host}".encode())

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
