"""The module's ``prefect.yaml``: its deployments, checked by parsing, never by importing user code.

Each deployment needs a unique ``name`` and an ``entrypoint`` ``path/to/file.py:function`` whose
file exists in the module and defines that function as a Prefect flow (decorated with ``@flow``,
or assigned from ``flow(...)``); the rest of each deployment is checked by ``deployment_config``.
Problems carry the line in ``prefect.yaml`` or in the flow file. The document is bounded: its
size, the values it expands to, and how deeply it nests.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deployer.bundle.archive import safe_name
from deployer.bundle.flow_ast import find_flow
from deployer.errors import Problem

if TYPE_CHECKING:
    from deployer.bundle.sizing import ModuleOptions

PREFECT_YAML = "prefect.yaml"
#: anchors and aliases are allowed, but the expanded document must stay small
MAX_YAML_VALUES = 100_000
MAX_YAML_BYTES = 1024 * 1024
#: no deployment needs more; deeper documents exhaust the YAML composer's recursion
MAX_YAML_DEPTH = 32
#: a flow file larger than this is not parsed (its syntax tree alone would take hundreds of MB)
MAX_FLOW_FILE_BYTES = 10 * 1024 * 1024


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
    accepts_kwargs: bool = False  # the flow takes **kwargs: any parameter name is fine
    #: line in prefect.yaml of each key below the deployment ("schedules.0.cron": 12)
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, path: str) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return self.line

    @property
    def openapi_schema(self) -> dict[str, Any] | None:
        """The schema registered with the deployment: a flow without ``**kwargs`` takes no other
        parameter (Prefect refuses one, and so does ``deployer run``)."""
        if not self.parameter_schema:
            return None
        if self.accepts_kwargs:
            return self.parameter_schema
        return {**self.parameter_schema, "additionalProperties": False}

    @property
    def flow_path(self) -> str:
        return self.entrypoint.rsplit(":", 1)[0]

    @property
    def flow_function(self) -> str:
        return self.entrypoint.rsplit(":", 1)[1]


def parse_deployments(root: Path) -> tuple[list[DeploymentSpec], list[Problem], ModuleOptions]:
    """The deployments of prefect.yaml, its problems, and its top-level ``deployer:`` section."""
    specs, problems, section = _parse(root)
    from deployer.bundle import sizing

    options, found = sizing.check_section(*section)
    problems += found
    for spec in specs:
        problems += sizing.check_deployment(spec, options)
    return specs, problems, options


Section = tuple[Any, dict[str, int]]
_NO_SECTION: Section = (None, {})


def _parse(root: Path) -> tuple[list[DeploymentSpec], list[Problem], Section]:
    path = root / PREFECT_YAML
    if path.stat().st_size > MAX_YAML_BYTES:
        return ([], [Problem(PREFECT_YAML, None, f"is larger than {MAX_YAML_BYTES} bytes")],
                _NO_SECTION)
    text = path.read_bytes()
    deep = _too_deep(text)
    if deep is not None:
        return ([], [Problem(PREFECT_YAML, deep, f"nests more than {MAX_YAML_DEPTH} levels deep")],
                _NO_SECTION)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or "not valid YAML"
        return ([], [Problem(PREFECT_YAML, line, f"is not valid YAML: {reason}")],
                _NO_SECTION)
    except RecursionError:  # nesting the text scan could not see (aliases of deep values)
        return ([], [Problem(PREFECT_YAML, None, f"nests more than {MAX_YAML_DEPTH} levels deep")],
                _NO_SECTION)
    if _too_big(data):
        return ([], [Problem(PREFECT_YAML, None, f"expands to more than {MAX_YAML_VALUES} values")],
                _NO_SECTION)
    if _depth(data) > MAX_YAML_DEPTH:
        return ([], [Problem(PREFECT_YAML, None, f"nests more than {MAX_YAML_DEPTH} levels deep")],
                _NO_SECTION)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        return ([], [Problem(PREFECT_YAML, 1, "must be a mapping with a 'deployments' list")],
                _NO_SECTION)
    items = data.get("deployments")
    if not isinstance(items, list) or not items:
        return ([], [Problem(PREFECT_YAML, _key_line(node, "deployments"),
                             "has no deployments (add a 'deployments:' list)")], _NO_SECTION)
    seq = _child(node, "deployments")
    nodes = list(seq.value) if isinstance(seq, yaml.SequenceNode) else []
    lines = [n.start_mark.line + 1 for n in nodes]
    specs: list[DeploymentSpec] = []
    from deployer.bundle.deployment_config import check_top_level

    problems: list[Problem] = check_top_level(data, {k: _key_line(node, k) for k in data})
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
        item_lines = _lines(nodes[index]) if index < len(nodes) else {}
        specs.append(DeploymentSpec(name=name, entrypoint=entrypoint, line=line, config=item,
                                    lines=item_lines))
    checked = []
    for spec in specs:
        flow, found = inspect_entrypoint(root, spec)
        problems.extend(found)
        checked.append(flow or spec)
    section = _child(node, "deployer")
    lines_below = _lines(section, "deployer") if section is not None else {}
    return checked, problems, (data.get("deployer"), {"deployer": _key_line(node, "deployer"),
                                                       **lines_below})


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
    if path.stat().st_size > MAX_FLOW_FILE_BYTES:
        return None, [Problem(rel, None, f"is larger than {MAX_FLOW_FILE_BYTES // (1024 * 1024)} MiB; "
                              "a flow file that big is not parsed")]
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except SyntaxError as exc:
        return None, [Problem(rel, exc.lineno, f"syntax error: {exc.msg}")]
    except ValueError as exc:  # e.g. NUL bytes
        return None, [Problem(rel, None, f"cannot be parsed: {exc}")]
    except (RecursionError, MemoryError):
        return None, [Problem(rel, None, "cannot be parsed: it nests too deeply for Python's parser")]
    found = find_flow(tree, spec.flow_function)
    if found is None:
        return None, [Problem(PREFECT_YAML, spec.line,
                              f"{where}: {rel} defines no function {spec.flow_function!r}")]
    if not found.is_flow:
        return None, [Problem(rel, found.line, f"{spec.flow_function} is not a Prefect flow "
                              "(decorate it with @flow)")]
    return replace(spec, flow_name=found.flow_name, parameter_schema=found.parameters,
                   accepts_kwargs=found.accepts_kwargs), []


def _too_deep(text: bytes) -> int | None:
    """The line where the document first nests deeper than allowed, from the text alone:
    flow collections (``[[[...``, ``{{...``) and block indentation both count."""
    depth = 0
    for number, raw in enumerate(text.decode("utf-8", "replace").splitlines(), start=1):
        stripped = raw.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = (len(raw) - len(stripped)) // 2 + stripped.count("- ")
        if indent > MAX_YAML_DEPTH:
            return number
        for char in stripped:
            if char in "[{":
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    return number
            elif char in "]}":
                depth = max(depth - 1, 0)
    return None


def _lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Dotted key paths below ``node`` (a deployment) and the line where each starts."""
    out: dict[str, int] = {}
    stack: list[tuple[str, yaml.Node]] = [(prefix, node)]
    while stack:
        path, current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    child = f"{path}.{key.value}" if path else str(key.value)
                    out[child] = key.start_mark.line + 1
                    stack.append((child, value))
        elif isinstance(current, yaml.SequenceNode):
            for index, value in enumerate(current.value):
                child = f"{path}.{index}" if path else str(index)
                out[child] = value.start_mark.line + 1
                stack.append((child, value))
    return out


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v if isinstance(v, yaml.Node) else None
    return None


def _key_line(node: yaml.MappingNode, key: str) -> int:
    for k, _ in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k.start_mark.line + 1
    return 1


def _depth(data: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_YAML_DEPTH:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


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
