"""Flow name and parameter schema read from source, the way Prefect would report them."""

from __future__ import annotations

import ast

import pytest

from deployer.bundle.flow_ast import find_flow


def flow_of(source: str, name: str):
    found = find_flow(ast.parse(source), name)
    assert found is not None
    return found


@pytest.mark.parametrize("source,target,expected", [
    ("@flow\ndef daily_pnl(): pass", "daily_pnl", "daily-pnl"),
    ("@flow(name='P&L report', retries=2)\ndef f(): pass", "f", "P&L report"),
    ("@prefect.flow(log_prints=True)\nasync def my_flow(): pass", "my_flow", "my-flow"),
    ("def impl_fn(): pass\nrun = flow(impl_fn)", "run", "impl-fn"),
    ("def impl(): pass\nrun = flow(name='named')(impl)", "run", "named"),
    ("@flow\ndef base(): pass\nrun = base.with_options(name='variant')", "run", "variant"),
])
def test_flow_names_follow_prefect_defaults(source: str, target: str, expected: str) -> None:
    assert flow_of(source, target).flow_name == expected


def test_parameter_schema_has_positions_types_defaults_and_required() -> None:
    source = ("@flow\ndef f(a: str, b: int = 3, c: float | None = None, d: 'bool' = True, *, "
              "e: list[str] = ['x'], g=object()): pass")
    schema = flow_of(source, "f").parameters
    props = schema["properties"]
    assert schema["required"] == ["a"]
    assert props["a"] == {"title": "a", "position": 0, "type": "string"}
    assert props["b"] == {"title": "b", "position": 1, "type": "integer", "default": 3}
    assert props["c"]["anyOf"] == [{"type": "number"}, {"type": "null"}] and props["c"]["default"] is None
    assert props["d"]["type"] == "boolean" and props["e"] == {"title": "e", "position": 4, "type": "array", "default": ["x"]}
    assert "default" not in props["g"] and "type" not in props["g"]


def test_undecorated_function_is_found_but_not_a_flow() -> None:
    found = flow_of("def f(): pass", "f")
    assert not found.is_flow and found.line == 1
