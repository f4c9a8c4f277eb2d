"""Reading a flow from source, without importing it: is it a flow, its name, its parameters.

The deployer registers deployments from the function app, where user code must never run, so
what ``prefect deploy`` learns by importing the flow is read here from the AST instead:

* the flow name: the decorator's literal ``name=``, else the function name with ``_`` -> ``-``
  (Prefect's default);
* a parameter schema in the shape Prefect uses (``title``, ``position``, ``default``, ``type``
  for simple annotations). Annotations it cannot read leave the type open.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

_SIMPLE_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                 "dict": "object", "list": "array"}


@dataclass(frozen=True)
class FlowDef:
    line: int
    is_flow: bool
    flow_name: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    accepts_kwargs: bool = False


def find_flow(tree: ast.Module, name: str) -> FlowDef | None:
    functions = {s.name: s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    result: FlowDef | None = None
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            decorator = next((d for d in stmt.decorator_list if is_flow_expr(d)), None)
            result = FlowDef(stmt.lineno, decorator is not None,
                             _flow_name(decorator, stmt.name), parameter_schema(stmt.args),
                             stmt.args.kwarg is not None)
        elif isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            # hello = flow(impl) / flow(name="x")(impl) / base.with_options(name="x")
            wrapped = _wrapped_function(stmt.value, functions)
            default = wrapped.name if wrapped is not None else name
            result = FlowDef(stmt.lineno, is_flow_expr(stmt.value),
                             _flow_name(stmt.value, default),
                             parameter_schema(wrapped.args) if wrapped is not None else {},
                             wrapped is None or wrapped.args.kwarg is not None)
    return result


def is_flow_expr(expr: ast.expr) -> bool:
    """``flow``, ``prefect.flow``, ``flow(...)``, ``flow(...)(fn)``, ``x.with_options(...)``."""
    if isinstance(expr, ast.Call):
        if isinstance(expr.func, ast.Attribute) and expr.func.attr == "with_options":
            return True
        return is_flow_expr(expr.func)
    if isinstance(expr, ast.Name):
        return expr.id == "flow"
    if isinstance(expr, ast.Attribute):
        return expr.attr == "flow"
    return False


def _flow_name(expr: ast.expr | None, function_name: str) -> str:
    while isinstance(expr, ast.Call):
        for keyword in expr.keywords:
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) and isinstance(
                    keyword.value.value, str):
                return keyword.value.value
        expr = expr.func
    return function_name.replace("_", "-")


def _wrapped_function(expr: ast.expr, functions: dict[str, Any]) -> Any:
    while isinstance(expr, ast.Call):
        for arg in expr.args:
            if isinstance(arg, ast.Name) and arg.id in functions:
                return functions[arg.id]
        func = expr.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in functions:
            return functions[func.value.id]
        expr = expr.func
    return None


def parameter_schema(args: ast.arguments) -> dict[str, Any]:
    positional = [*args.posonlyargs, *args.args]
    with_default = positional[len(positional) - len(args.defaults):]
    defaults: dict[str, ast.expr] = dict(zip([a.arg for a in with_default], args.defaults, strict=True))
    defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                     if d is not None})
    properties: dict[str, Any] = {}
    required: list[str] = []
    for position, arg in enumerate([*positional, *args.kwonlyargs]):
        prop: dict[str, Any] = {"title": arg.arg, "position": position}
        prop.update(_annotation_schema(arg.annotation))
        if arg.arg in defaults:
            try:
                prop["default"] = ast.literal_eval(defaults[arg.arg])
            except (ValueError, SyntaxError, TypeError):
                pass  # a computed default: Prefect fills it at run time
        else:
            required.append(arg.arg)
        properties[arg.arg] = prop
    schema: dict[str, Any] = {"title": "Parameters", "type": "object", "properties": properties,
                              "definitions": {}}
    if required:
        schema["required"] = required
    return schema


def _annotation_schema(node: ast.expr | None) -> dict[str, Any]:
    if node is None:
        return {}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return {}
    if isinstance(node, ast.Name) and node.id in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[node.id]}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id in _SIMPLE_TYPES:
            return {"type": _SIMPLE_TYPES[node.value.id]}
        if node.value.id == "Optional":
            inner = _annotation_schema(node.slice)
            return {"anyOf": [inner, {"type": "null"}]} if inner else {}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [_annotation_schema(n) for n in (node.left, node.right)]
        nulls = [isinstance(n, ast.Constant) and n.value is None for n in (node.left, node.right)]
        kinds = [{"type": "null"} if is_null else part for part, is_null in zip(parts, nulls, strict=True)]
        if all(kinds):
            return {"anyOf": kinds}
    return {}
