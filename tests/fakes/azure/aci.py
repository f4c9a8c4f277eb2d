"""Fake Azure Container Instances (2023-05-01): container groups as state, provisioning and
deletion that take (simulated) time, the service's own validation, secrets never read back."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.fakes.azure.http import Request, Response, SimClock
from tests.fakes.azure.swagger import spec

SPEC = "containerinstance/2023-05-01/containerInstance.json"
GROUP = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                   r"Microsoft\.ContainerInstance/containerGroups(?:/(?P<name>[^/]+))?"
                   r"(?:/containers/(?P<container>[^/]+)/logs)?/?$", re.IGNORECASE)
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # ACI also refuses consecutive hyphens
PAGE_SIZE = 100


@dataclass
class Group:
    body: dict[str, Any]
    created: datetime
    deleting_since: datetime | None = None
    fate: str = "runs"  # runs | fails | never-starts | preflight-fails
    logs: str = ""
    #: why a never-starting container waits, as its events say it
    waiting_because: str = "Failed to pull image"


@dataclass
class FakeAci:
    clock: SimClock
    provision_seconds: float = 20.0
    delete_seconds: float = 45.0
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    #: decides a new group's fate from its name: "runs", "fails" (provisioning Failed),
    #: "never-starts" (its container keeps waiting) or "preflight-fails" (it runs, but its
    #: preflight finds that a flow does not load: ``deployer.preflight``)
    fate: Callable[[str], str] = lambda name: "runs"
    #: whether the subscription has registered Microsoft.ContainerInstance (ARM refuses a PUT
    #: of a new resource of an unregistered provider)
    registered: bool = True
    #: an agent's warm checker answers this long after it is asked (a 1 s look at the channel,
    #: the fetch and the load): (group, when it shows, the log line)
    check_seconds: float = 2.0
    answers: list[tuple[str, datetime, str]] = field(default_factory=list)
    #: a group with restart policy Never (a run's, a check's) ends this long after it started
    #: running, exit code 0 unless ``exit_codes`` names the group
    ends_after_seconds: float = 30.0
    exit_codes: dict[str, int] = field(default_factory=dict)

    def answer_check(self, name: str, request_id: str, results: list[dict[str, Any]]) -> None:
        """What the agent's warm checker prints (``preflight.CHECKER``), once it had the time."""
        import json

        when = self.clock.now() + timedelta(seconds=self.check_seconds)
        self.answers.append((name, when, f"DEPLOYER-CHECK {request_id} {json.dumps(results)}"))

    def handle(self, req: Request) -> tuple[str, Response] | None:
        match = GROUP.match(req.path)
        if match is None:
            return None
        op = spec(SPEC).find(req.method, req.path)
        kind = op.operation_id if op else f"aci:{req.method}"
        if req.query.get("api-version") != spec(SPEC).version:
            return kind, Response.arm_error(400, "InvalidApiVersionParameter",
                                            f"api-version {req.query.get('api-version')!r} is not supported")
        if not self.registered:  # ARM answers for the provider, whatever the call
            return kind, Response.arm_error(
                409, "MissingSubscriptionRegistration", "The subscription is not registered to "
                "use namespace 'Microsoft.ContainerInstance'. See https://aka.ms/rps-not-found "
                "for how to register subscriptions.")
        rg, name = match["rg"], match["name"]
        if match["container"]:
            return kind, self._logs(rg, name, req)
        if name is None:
            return kind, self._list(rg, req)
        if req.method == "PUT":
            return kind, self._put(match["sub"], rg, name, req, op)
        if req.method == "GET":
            group = self._live(rg, name)
            if group is None:
                return kind, _not_found(name)
            return kind, Response.of_json(200, self._view(group, instance_view=True))
        if req.method == "DELETE":
            group = self._live(rg, name)
            if group is None:
                return kind, Response(204)
            if group.deleting_since is None:
                group.deleting_since = self.clock.now()
            return kind, Response(202, headers={"Location": f"https://management.azure.com/subscriptions/"
                                                f"{match['sub']}/providers/Microsoft.ContainerInstance/"
                                                f"operations/{uuid.uuid4()}?api-version=2023-05-01"})
        return kind, Response.arm_error(405, "MethodNotAllowed", req.method)

    # -- operations ---------------------------------------------------------------------------

    def _put(self, sub: str, rg: str, name: str, req: Request, op: Any) -> Response:
        body = req.json()
        errors = spec(SPEC).validate(op, body) + _service_rules(name, body)
        if errors:
            return Response.arm_error(400, "InvalidRequestContent", "; ".join(errors))
        existing = self._live(rg, name)
        if existing is not None and existing.deleting_since is not None:
            return Response.arm_error(409, "Conflict", f"The container group '{name}' is being "
                                      "deleted; it cannot be created or updated until that ends.")
        stored = copy.deepcopy(body)
        stored.update({"id": req.path, "name": name, "type": "Microsoft.ContainerInstance/containerGroups"})
        self.groups[(rg, name)] = Group(stored, self.clock.now(), fate=self.fate(name))
        status = 200 if existing else 201
        return Response.of_json(status, self._view(self.groups[(rg, name)], instance_view=False),
                                {"Azure-AsyncOperation": f"https://management.azure.com/subscriptions/{sub}/"
                                 f"providers/Microsoft.ContainerInstance/locations/{body['location']}/"
                                 f"operations/{uuid.uuid4()}?api-version=2023-05-01"})

    def _list(self, rg: str, req: Request) -> Response:
        names = sorted(n for (g, n) in list(self.groups) if g == rg and self._live(g, n))
        start = int(req.query.get("$skiptoken", "0"))
        page = names[start:start + PAGE_SIZE]
        out: dict[str, Any] = {"value": [self._view(self.groups[(rg, n)], instance_view=False) for n in page]}
        if start + PAGE_SIZE < len(names):
            out["nextLink"] = (f"https://management.azure.com{req.path}?api-version=2023-05-01"
                               f"&$skiptoken={start + PAGE_SIZE}")
        return Response.of_json(200, out)

    def _logs(self, rg: str, name: str, req: Request) -> Response:
        group = self._live(rg, name)
        if group is None:
            return _not_found(name)
        lines = group.logs.splitlines()
        provisioning, view = self.state_of(group)
        never = group.body.get("properties", {}).get("restartPolicy") == "Never"
        if view == "Running" or (never and provisioning == "Succeeded"):  # it ran: it has a log
            lines = [*_preflight(group), *lines,
                     *(line for n, when, line in self.answers if n == name and when <= self.clock.now())]
        tail = int(req.query.get("tail", "0") or 0)
        return Response.of_json(200, {"content": "\n".join(lines[-tail:] if tail else lines)})

    # -- state ----------------------------------------------------------------------------------

    def _live(self, rg: str, name: str) -> Group | None:
        group = self.groups.get((rg, name))
        if group is None:
            return None
        if group.deleting_since is not None and \
                (self.clock.now() - group.deleting_since).total_seconds() >= self.delete_seconds:
            del self.groups[(rg, name)]
            return None
        return group

    def state_of(self, group: Group) -> tuple[str, str]:
        """(provisioningState, instance state) at the current simulated time."""
        # a group being deleted reads as it did before (ARM documents no state for it): the
        # deployer must know a group is gone only from a 404
        age = (self.clock.now() - group.created).total_seconds()
        if age < self.provision_seconds:
            return ("Pending" if age < self.provision_seconds / 2 else "Creating"), "Pending"
        if group.fate == "fails":
            return "Failed", "Failed"
        if group.fate == "never-starts":
            return "Creating", "Pending"
        if group.body.get("properties", {}).get("restartPolicy") == "Never" and \
                age >= self.provision_seconds + self.ends_after_seconds:
            # its one container ran and exited, not restarted: the group reads Succeeded after
            # an exit code 0, Failed after another (ACI's "container states")
            code = self.exit_codes.get(group.body.get("name", ""), 0)
            return "Succeeded", "Succeeded" if code == 0 else "Failed"
        return "Succeeded", "Running"

    def running(self, rg: str) -> list[str]:
        return [n for (g, n), group in list(self.groups.items())
                if g == rg and self._live(g, n) and self.state_of(group) == ("Succeeded", "Running")]

    def _view(self, group: Group, *, instance_view: bool) -> dict[str, Any]:
        body = copy.deepcopy(group.body)
        provisioning, state = self.state_of(group)
        props = body.setdefault("properties", {})
        props["provisioningState"] = provisioning
        for container in props.get("containers", []):
            for env in container.get("properties", {}).get("environmentVariables", []):
                env.pop("secureValue", None)  # secrets are never returned
            if instance_view and state in ("Succeeded", "Failed") \
                    and props.get("restartPolicy") == "Never":
                container["properties"]["instanceView"] = {
                    "restartCount": 0, "events": [], "currentState": {
                        "state": "Terminated", "detailStatus": "Completed",
                        "exitCode": self.exit_codes.get(body.get("name", ""), 0)}}
            elif instance_view:
                container["properties"]["instanceView"] = {
                    "restartCount": 0,
                    "currentState": {"state": "Running" if state == "Running" else "Waiting",
                                     "detailStatus": "" if state == "Running" else
                                     ("ErrImagePull" if group.fate == "never-starts" else "")},
                    "events": [{"count": 3, "name": "Failed", "type": "Warning",
                                "message": group.waiting_because}] if group.fate == "never-starts" else []}
        for credential in props.get("imageRegistryCredentials", []):
            credential.pop("password", None)
        if instance_view:
            props["instanceView"] = {"state": state, "events": []}
        return body


def _preflight(group: Group) -> list[str]:
    """What the container's preflight prints, as the real one would (``deployer.preflight``)."""
    import json

    containers = group.body.get("properties", {}).get("containers", [])
    command = containers[0].get("properties", {}).get("command", []) if containers else []
    at = command.index("-c") if "-c" in command else -1  # after the image's entrypoint
    if at < 1 or len(command) < at + 3:
        return []
    spec = json.loads(command[at + 2])
    ok = group.fate != "preflight-fails"
    results = [{"deployment": name, "ok": True} if ok else
               {"deployment": name, "ok": False, "entrypoint": entrypoint,
                "exception": "ModuleNotFoundError", "message": "No module named 'pandas'",
                "file": entrypoint.split(":")[0], "line": 1}
               for name, entrypoint in spec["entrypoints"]]
    return ["DEPLOYER-PREFLIGHT " + json.dumps(results)]


def _service_rules(name: str, body: dict[str, Any]) -> list[str]:
    """What ACI rejects beyond the schema."""
    errors = []
    if len(name) > 63 or not NAME.match(name) or "--" in name:
        errors.append(f"container group name {name!r} must be 1-63 lowercase letters, digits and "
                      "'-', start and end with a letter or digit, with no consecutive '-'")
    props = body.get("properties", {})
    if str(props.get("osType", "")).lower() not in ("linux", "windows"):
        errors.append(f"osType {props.get('osType')!r} must be Linux or Windows")
    if props.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        errors.append(f"restartPolicy {props.get('restartPolicy')!r} is invalid")
    identities = (body.get("identity") or {}).get("userAssignedIdentities") or {}
    for credential in props.get("imageRegistryCredentials", []):
        if credential.get("identity") and credential["identity"] not in identities:
            errors.append("imageRegistryCredentials identity must be one of the group's identities")
        if credential.get("username") and not credential.get("password") and not credential.get("identity"):
            errors.append("imageRegistryCredentials with a username need a password")
    names = set()
    for container in props.get("containers", []):
        cname = container.get("name", "")
        if cname in names or not NAME.match(cname):
            errors.append(f"container name {cname!r} is invalid or repeated")
        names.add(cname)
        cprops = container.get("properties", {})
        requests_ = cprops.get("resources", {}).get("requests", {})
        if not 0 < float(requests_.get("cpu", 0)) <= 4 or not 0 < float(requests_.get("memoryInGB", 0)) <= 16:
            errors.append("resources.requests: cpu must be in (0, 4] and memoryInGB in (0, 16]")
        seen = set()
        for env in cprops.get("environmentVariables", []):
            if env.get("name") in seen:
                errors.append(f"environment variable {env.get('name')!r} is repeated")
            seen.add(env.get("name"))
            if ("value" in env) == ("secureValue" in env):
                errors.append(f"environment variable {env.get('name')!r} needs exactly one of value, secureValue")
    tags = body.get("tags") or {}
    if len(tags) > 50 or any(len(str(v)) > 256 for v in tags.values()):
        errors.append("at most 50 tags, values of at most 256 characters")
    return errors


def _not_found(name: str) -> Response:
    return Response.arm_error(404, "ResourceNotFound", f"The Resource 'Microsoft.ContainerInstance/"
                              f"containerGroups/{name}' was not found.")
