"""The module's ``prefect.yaml``: its deployments, checked by parsing, never by importing user code.

Each deployment needs a unique ``name`` and an ``entrypoint`` ``path/to/file.py:function`` whose
file exists in the module and defines that function as a Prefect flow (decorated with ``@flow``,
or assigned from ``flow(...)``). Problems carry the line in ``prefect.yaml`` or in the flow file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployer.bundle.archive import safe_name
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
    for spec in specs:
        problems.extend(check_entrypoint(root, spec))
    return specs, problems


def check_entrypoint(root: Path, spec: DeploymentSpec) -> list[Problem]:
    rel, reason = safe_name(spec.flow_path)
    where = f"deployment {spec.name!r}"
    if reason or not rel:
        return [Problem(PREFECT_YAML, spec.line, f"{where}: entrypoint path {spec.flow_path!r} "
                        f"must be a relative path inside the module ({reason or 'empty'})")]
    if not rel.endswith(".py"):
        return [Problem(PREFECT_YAML, spec.line, f"{where}: entrypoint {rel!r} is not a .py file")]
    path = root / rel
    if not path.is_file():
        return [Problem(PREFECT_YAML, spec.line, f"{where}: entrypoint file {rel} does not exist")]
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except SyntaxError as exc:
        return [Problem(rel, exc.lineno, f"syntax error: {exc.msg}")]
    except ValueError as exc:  # e.g. NUL bytes
        return [Problem(rel, None, f"cannot be parsed: {exc}")]
    found = _find_flow(tree, spec.flow_function)
    if found is None:
        return [Problem(PREFECT_YAML, spec.line,
                        f"{where}: {rel} defines no function {spec.flow_function!r}")]
    line, is_flow = found
    if not is_flow:
        return [Problem(rel, line, f"{spec.flow_function} is not a Prefect flow "
                        "(decorate it with @flow)")]
    return []


def _find_flow(tree: ast.Module, name: str) -> tuple[int, bool] | None:
    result: tuple[int, bool] | None = None
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            result = (stmt.lineno, any(_is_flow_expr(d) for d in stmt.decorator_list))
        elif isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            result = (stmt.lineno, _is_flow_expr(stmt.value))
    return result


def _is_flow_expr(expr: ast.expr) -> bool:
    """``flow``, ``prefect.flow``, ``flow(...)``, ``flow(...)(fn)``, ``x.with_options(...)``."""
    if isinstance(expr, ast.Call):
        if isinstance(expr.func, ast.Attribute) and expr.func.attr == "with_options":
            return True
        return _is_flow_expr(expr.func)
    if isinstance(expr, ast.Name):
        return expr.id == "flow"
    if isinstance(expr, ast.Attribute):
        return expr.attr == "flow"
    return False


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
