"""The module's ``prefect.yaml``: its deployments, checked by parsing, never by importing user code.

Each deployment needs a unique ``name`` and an ``entrypoint`` ``path/to/file.py:function`` whose
file exists in the module and defines that function as a Prefect flow (decorated with ``@flow``,
or assigned from ``flow(...)``). Problems carry the line in ``prefect.yaml`` or in the flow file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from deployer.bundle.archive import safe_name
from deployer.bundle.flow_ast import find_flow
from deployer.errors import Problem

PREFECT_YAML = "prefect.yaml"
#: anchors and aliases are allowed, but the expanded document must stay small
MAX_YAML_VALUES = 100_000
MAX_YAML_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment from prefect.yaml, as data. ``config`` is the deployment's mapping."""

    name: str
    entrypoint: str
    line: int
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    #: the flow's name as Prefect will report it, and its parameters, read from the code's AST
    flow_name: str = ""
    parameter_schema: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def flow_path(self) -> str:
        return self.entrypoint.rsplit(":", 1)[0]

    @property
    def flow_function(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]


def parse_deployments(root: Path) -> tuple[list[DeploymentSpec], list[Problem]]:
    path = root / PREFECT_YAML
    if path.stat().st_size > MAX_YAML_BYTES:
        return [], [Problem(PREFECT_YAML, None, f"is larger than {MAX_YAML_BYTES} bytes")]
    text = path.read_bytes()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or "not valid YAML"
        return [], [Problem(PREFECT_YAML, line, f"is not valid YAML: {reason}")]
    if _too_big(data):
        return [], [Problem(PREFECT_YAML, None, f"expands to more than {MAX_YAML_VALUES} values")]
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        return [], [Problem(PREFECT_YAML, 1, "must be a mapping with a 'deployments' list")]
    items = data.get("deployments")
    if not isinstance(items, list) or not items:
        return [], [Problem(PREFECT_YAML, _key_line(node, "deployments"),
                            "has no deployments (add a 'deployments:' list)")]
    seq = _child(node, "deployments")
    lines = [n.start_mark.line + 1 for n in seq.value] if isinstance(seq, yaml.SequenceNode) else []
    specs: list[DeploymentSpec] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        line = lines[index] if index < len(lines) else 1
        if not isinstance(item, dict):
            problems.append(Problem(PREFECT_YAML, line, "a deployment must be a mapping"))
            continue
        name, entrypoint = item.get("name"), item.get("entrypoint")
        if not isinstance(name, str) or not name.strip():
            problems.append(Problem(PREFECT_YAML, line, "deployment has no 'name'"))
            continue
        if name in seen:
            problems.append(Problem(PREFECT_YAML, line,
                                    f"deployment name {name!r} repeats line {seen[name]}"))
            continue
        seen[name] = line
        if not isinstance(entrypoint, str) or ":" not in entrypoint:
            problems.append(Problem(PREFECT_YAML, line, f"deployment {name!r} needs an "
                                    "'entrypoint' of the form path/to/file.py:flow_function"))
            continue
        specs.append(DeploymentSpec(name=name, entrypoint=entrypoint, line=line, config=item))
    checked = []
    for spec in specs:
        flow, found = inspect_entrypoint(root, spec)
        problems.extend(found)
        checked.append(flow or spec)
    return checked, problems


def inspect_entrypoint(root: Path, spec: DeploymentSpec) -> tuple[DeploymentSpec | None,
                                                                   list[Problem]]:
    """The spec completed with its flow's name and parameters, or the problems that prevent it."""
    rel, reason = safe_name(spec.flow_path)
    where = f"deployment {spec.name!r}"
    if reason or not rel:
        return None, [Problem(PREFECT_YAML, spec.line, f"{where}: entrypoint path "
                              f"{spec.flow_path!r} must be a relative path inside the module "
                              f"({reason or 'empty'})")]
    if not rel.endswith(".py"):
        return None, [Problem(PREFECT_YAML, spec.line, f"{where}: entrypoint {rel!r} is not a .py file")]
    path = root / rel
    if not path.is_file():
        return None, [Problem(PREFECT_YAML, spec.line, f"{where}: entrypoint file {rel} does not exist")]
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except SyntaxError as exc:
        return None, [Problem(rel, exc.lineno, f"syntax error: {exc.msg}")]
    except ValueError as exc:  # e.g. NUL bytes
        return None, [Problem(rel, None, f"cannot be parsed: {exc}")]
    found = find_flow(tree, spec.flow_function)
    if found is None:
        return None, [Problem(PREFECT_YAML, spec.line,
                              f"{where}: {rel} defines no function {spec.flow_function!r}")]
    if not found.is_flow:
        return None, [Problem(rel, found.line, f"{spec.flow_function} is not a Prefect flow "
                              "(decorate it with @flow)")]
    return replace(spec, flow_name=found.flow_name, parameter_schema=found.parameters), []


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _key_line(node: yaml.MappingNode, key: str) -> int:
    for k, _ in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k.start_mark.line + 1
    return 1


def _too_big(data: object) -> bool:
    """Count values with aliases expanded, stopping as soon as the budget is spent."""
    budget = MAX_YAML_VALUES
    stack = [data]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
