"""The environment variables a module's code reads by literal name, checked against what its
agent's environment will hold: ``.env`` (its keys, Key Vault references included) and what the
deployer and the platform set themselves.

``os.environ["X"]`` (or ``environ["X"]``) of a key nothing sets fails the first run, or the
import: a problem, with file and line. ``os.environ.get("X")`` and ``os.getenv("X")`` without a
default return None: a note, with file and line (the code may mean it). Names built at run time
(``os.environ[f"{prefix}_KEY"]``) cannot be known and are left alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from deployer.bundle.tree import Tree
from deployer.errors import Problem

#: what an agent's environment holds besides .env: the deployer's Prefect settings, the agents'
#: identity on Azure, and what every process has
PROVIDED_PREFIXES = ("PREFECT_",)
PROVIDED = frozenset({"AZURE_CLIENT_ID", "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR",
                      "PWD", "USER", "HOSTNAME", "VIRTUAL_ENV", "PYTHONPATH", "SHELL", "TERM"})
#: a flow file is at most this big (the module contract's bound); larger ones are not read here
MAX_SOURCE = 10 * 1024 * 1024


@dataclass(frozen=True)
class EnvRead:
    path: str
    line: int
    key: str
    required: bool  # os.environ[...]: a KeyError when absent
    how: str


def env_reads(source: str, path: str) -> list[EnvRead]:
    """Every read of an environment variable by literal name in ``source``."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError):
        return []  # the loader reports a file that does not parse
    environ_names = {"environ"} if _imports(tree, "environ") else set()
    getenv_names = {"getenv"} if _imports(tree, "getenv") else set()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_environ(node.value, environ_names) \
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            out.append(EnvRead(path, node.lineno, node.slice.value, True, "os.environ[...]"))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and len(node.args) == 1 and not node.keywords:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" \
                    and _is_environ(func.value, environ_names):
                out.append(EnvRead(path, node.lineno, node.args[0].value, False, "os.environ.get"))
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv" and _is_os(func.value)) or \
                    (isinstance(func, ast.Name) and func.id in getenv_names):
                out.append(EnvRead(path, node.lineno, node.args[0].value, False, "os.getenv"))
    return out


def _imports(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.ImportFrom) and n.module == "os" and any(a.name == name for a in n.names)
               for n in ast.walk(tree))


def _is_os(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "os"


def _is_environ(node: ast.expr, names: set[str]) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ" and _is_os(node.value)) or \
        (isinstance(node, ast.Name) and node.id in names)


def provided(key: str, env_keys: frozenset[str]) -> bool:
    return key in env_keys or key in PROVIDED or key.startswith(PROVIDED_PREFIXES)


def check_env_reads(tree: Tree, env_keys: frozenset[str]) -> tuple[list[Problem], list[str]]:
    """(problems, notes) of the module's Python files against ``.env``'s keys."""
    problems: list[Problem] = []
    notes: list[str] = []
    for entry in tree.files:
        if not entry.path.endswith(".py") or entry.size > MAX_SOURCE:
            continue
        source = (tree.root / entry.path).read_text(encoding="utf-8", errors="replace")
        for read in env_reads(source, entry.path):
            if provided(read.key, env_keys):
                continue
            if read.required:
                problems.append(Problem(read.path, read.line, (
                    f"reads environment variable {read.key!r} ({read.how}), which .env does not "
                    f"set: the flow would fail with KeyError; add {read.key}=... to .env (or a Key "
                    "Vault reference), or read it with a default")))
            else:
                notes.append(f"{read.path}:{read.line}: {read.how}({read.key!r}) is None: .env does "
                             f"not set {read.key}")
    return problems, notes
