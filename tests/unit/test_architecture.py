"""The structure the imports draw, kept as the design says (DESIGN.md, STYLE.md): a handler for
every operation type, no import circle, ``pipeline`` and ``rotation`` independent of each other,
modules under 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from deployer.rotation.handlers import HANDLERS
from deployer.rotation.operations import KINDS, Operation

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "deployer"


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports() -> dict[str, set[str]]:
    """module -> the deployer modules it imports (at run time or for type checking)."""
    known = modules()

    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deployer"):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("deployer")]
            edges[module] |= {r for r in map(resolve, names) if r and r != module}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_operation_type_has_exactly_one_handler() -> None:
    operations = set(KINDS.values())
    assert set(HANDLERS) == operations
    assert all(issubclass(kind, Operation) for kind in HANDLERS)
    assert len({h.__qualname__ for h in HANDLERS.values()}) == len(HANDLERS)


def test_no_import_circle_through_the_kernel() -> None:
    """The kernel (models, ports, state, services, config, errors) and the layers above it
    (revisions, rotation, pipeline) import in one direction only."""
    kernel = ("deployer.models", "deployer.ports", "deployer.state", "deployer.services",
              "deployer.config", "deployer.errors", "deployer.revisions", "deployer.rotation",
              "deployer.pipeline", "deployer.request_queue", "deployer.codec")
    found = [c for c in cycles(imports()) if any(m.startswith(kernel) for m in c)]
    assert found == []


def test_pipeline_and_rotation_do_not_import_each_other() -> None:
    edges = imports()
    across = sorted((a, b) for a, targets in edges.items() for b in targets
                    if {a.split(".")[1], b.split(".")[1]} == {"pipeline", "rotation"})
    assert across == []


def test_no_module_is_over_400_lines() -> None:
    assert {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400} == {}
