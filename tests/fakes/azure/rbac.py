"""Azure RBAC in the fake: who may do what.

Roles come from Microsoft's published built-in role definitions
(``tests/data/azure-specs/rbac/builtin-roles.json``, sources in its README) and from the custom
roles ``infra/main.bicep`` defines; role assignments from ``infra/`` itself, parsed with pycep (the
parser checkov uses), never copied: an assignment the template drops is gone here too. A call is
allowed when an assignment of its caller, at its resource or above, has a role whose ``actions``
(minus ``notActions``) or, for data-plane calls, ``dataActions`` (minus ``notDataActions``) match
its action, case-insensitively, ``*`` matching anything (Microsoft's rules, quoted in that README).
A ``/*/`` also matches a single ``/``: Managed Identity Operator's
``userAssignedIdentities/*/assign/action`` is what grants ARM's
``userAssignedIdentities/assign/action``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from tests.fakes.azure.swagger import spec_path

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
#: the template's identities, as the fake's callers name themselves (``FakeCredential``)
PRINCIPALS = {"appIdentity": "app", "appPrincipalId": "app", "agentIdentity": "agents",
              "principalId": "operator"}
#: the template's resources that are scopes of assignments, by the names the fake uses
SCOPES = {"registry": "registry", "vault": "vault", "storage": "storage",
          "blobContainers[2]": "code-container", "agentIdentity": "agent-identity",
          "agentsRg": "agents-rg"}


@dataclass(frozen=True)
class Role:
    name: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def grants(self, action: str, *, data: bool = False) -> bool:
        allowed, denied = (self.data_actions, self.not_data_actions) if data else \
            (self.actions, self.not_actions)
        return any(_matches(p, action) for p in allowed) and not any(_matches(p, action) for p in denied)


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern).replace(r"/\*/", "(?:/.*)?/").replace(r"\*", ".*")
    return re.compile(f"^{escaped}$", re.IGNORECASE)


def _matches(pattern: str, action: str) -> bool:
    return bool(_pattern(pattern).match(action))


@cache
def builtin_roles() -> dict[str, Role]:
    """Microsoft's built-in roles by id (the GUID a roleDefinitionId ends with)."""
    data = json.loads(spec_path("rbac/builtin-roles.json").read_text())
    return {r["id"].lower(): Role(name, tuple(r["actions"]), tuple(r["notActions"]),
                                  tuple(r["dataActions"]), tuple(r["notDataActions"]))
            for name, r in data.items()}


@dataclass(frozen=True)
class Assignment:
    name: str  # the template's resource symbol (appBuilds, agentPull, ...)
    principal: str  # app | agents | operator
    role: Role
    scope: str  # registry | vault | storage | code-container | agent-identity | agents-rg


def _parse(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)  # type: ignore[no-any-return]


def _symbol(expression: Any) -> str:
    """The first name of a Bicep expression (``appIdentity.properties.principalId`` -> appIdentity)."""
    if isinstance(expression, str):
        return expression
    operator = expression.get("operator", {}) if isinstance(expression, dict) else {}
    operands = operator.get("operands", {})
    if operator.get("type") == "index_accessor":
        return f"{_symbol(operands['operand_1'])}[{operands['operand_2']}]"
    return _symbol(operands.get("operand_1")) if operands else ""


def _custom_roles(main: dict[str, Any]) -> dict[str, Role]:
    out = {}
    for symbol, resource in main["resources"].items():
        if resource["type"] == "Microsoft.Authorization/roleDefinitions":
            [permissions] = resource["config"]["properties"]["permissions"]
            out[symbol] = Role(symbol, tuple(permissions.get("actions") or ()),
                               tuple(permissions.get("notActions") or ()))
    return out


def _role(definition: Any, roles_var: dict[str, str], custom: dict[str, Role],
          params: dict[str, str]) -> Role:
    if isinstance(definition, str):  # a parameter that carries a custom role's id
        return custom[params[definition]]
    parameters = definition["function"]["parameters"]
    builtin = roles_var[_operand_2(parameters["resource_name_1"])]
    return builtin_roles()[builtin.lower()]


def _operand_2(expression: dict[str, Any]) -> str:
    return str(expression["operator"]["operands"]["operand_2"])


@cache
def template_assignments() -> tuple[Assignment, ...]:
    """Every role assignment infra/ makes, with its role resolved."""
    main = _parse(INFRA / "main.bicep")
    custom = _custom_roles(main)
    module_params = {"buildRunnerRoleId": "buildRunner", "agentManagerRoleId": "agentManager"}
    out = []
    for path, scope in ((INFRA / "resources.bicep", None), (INFRA / "modules" / "agents-rg-roles.bicep", "agentsRg")):
        parsed = _parse(path)
        roles_var = (parsed.get("variables", {}).get("roles") or {}).get("value") or {}
        for symbol, resource in parsed["resources"].items():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            config = resource["config"]
            config = config.get("config", config)  # a conditional resource nests its body
            properties = config["properties"]
            out.append(Assignment(
                symbol, PRINCIPALS[_symbol(properties["principalId"])],
                _role(properties["roleDefinitionId"], roles_var, custom, module_params),
                SCOPES[scope or _symbol(config.get("scope"))]))
    return tuple(out)


class Rbac:
    """The template's assignments over the fake world's resource ids (``scopes``: the names of
    ``SCOPES`` -> ARM resource ids)."""

    def __init__(self, scopes: dict[str, str], assignments: tuple[Assignment, ...] | None = None) -> None:
        self.scopes = scopes
        self.assignments = template_assignments() if assignments is None else assignments

    def without(self, name: str) -> Rbac:
        """The same, less the template's assignment ``name`` (what dropping it would do)."""
        kept = tuple(a for a in self.assignments if a.name != name)
        assert len(kept) < len(self.assignments), f"no assignment {name}"
        return Rbac(self.scopes, kept)

    def allows(self, principal: str, action: str, resource: str, *, data: bool = False) -> bool:
        resource = resource.lower().rstrip("/")
        for assignment in self.assignments:
            scope = self.scopes.get(assignment.scope, "").lower().rstrip("/")
            if assignment.principal == principal and scope and \
                    (resource == scope or resource.startswith(scope + "/")) and \
                    assignment.role.grants(action, data=data):
                return True
        return False

    def with_role(self, name: str, principal: str, role: Role, scope: str) -> Rbac:
        """One more assignment (a test's own, e.g. a role someone added by hand)."""
        return Rbac(self.scopes, (*self.assignments, replace(Assignment(name, principal, role, scope))))
