"""The module contract: what a ``flows/<module>/`` folder must hold, checked all at once.

``requirements.txt`` naming prefect, a ``Dockerfile`` that never copies ``.env`` into the image,
a ``.env`` (may be empty) with valid syntax, and a ``prefect.yaml`` whose deployments point at
flow functions that exist. Every problem is reported, with file and line where there is one.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from deployer.bundle.envfile import ENV_FILE, EnvFile, parse_env
from deployer.bundle.prefect_yaml import PREFECT_YAML, DeploymentSpec, parse_deployments
from deployer.bundle.tree import Tree
from deployer.errors import Problem

MODULE_NAME = re.compile(r"[a-z][a-z0-9-]{1,30}\Z")
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
REQUIRED = (REQUIREMENTS, DOCKERFILE, ENV_FILE, PREFECT_YAML)
MAX_SMALL_FILE = 1024 * 1024


@dataclass(frozen=True)
class ModuleCheck:
    name: str
    env: EnvFile
    deployments: tuple[DeploymentSpec, ...]
    problems: tuple[Problem, ...]


def check_name(name: str) -> list[Problem]:
    if MODULE_NAME.match(name):
        return []
    return [Problem("", None, f"module name {name!r} is invalid: use 2-31 characters, "
                              "lowercase letters, digits and '-', starting with a letter")]


def check_module(tree: Tree, name: str) -> ModuleCheck:
    problems: list[Problem] = [*check_name(name), *tree.problems]
    root = tree.root
    for required in REQUIRED:
        if not tree.has(required):
            problems.append(Problem(required, None, _MISSING[required]))
    env = EnvFile()
    deployments: list[DeploymentSpec] = []
    if tree.has(REQUIREMENTS):
        problems.extend(check_requirements(_small(root, REQUIREMENTS)))
    if tree.has(DOCKERFILE):
        ignore = _small(root, DOCKERIGNORE) if tree.has(DOCKERIGNORE) else b""
        problems.extend(check_dockerfile(_small(root, DOCKERFILE), ignore))
    if tree.has(ENV_FILE):
        env = parse_env(_small(root, ENV_FILE))
        problems.extend(env.problems)
    if tree.has(PREFECT_YAML):
        deployments, found = parse_deployments(root)
        problems.extend(found)
    return ModuleCheck(name=name, env=env, deployments=tuple(deployments),
                       problems=tuple(problems))


_MISSING = {
    REQUIREMENTS: "is missing (list the flow's Python packages, prefect included)",
    DOCKERFILE: "is missing (the image the agent runs; `deployer new` writes one)",
    ENV_FILE: "is missing (it may be empty; its values reach the agent as secure variables)",
    PREFECT_YAML: "is missing (it declares the module's Prefect deployments)",
}


def _small(root: Path, rel: str) -> bytes:
    with open(root / rel, "rb") as handle:
        return handle.read(MAX_SMALL_FILE)


def check_requirements(data: bytes) -> list[Problem]:
    text = data.decode("utf-8", "replace")
    logical = _join_continuations(text.splitlines())
    for _line, content in logical:
        content = re.sub(r"(^|\s)#.*$", "", content).strip()
        if not content or content.startswith("-"):
            continue
        content = re.split(r"\s--?\w", content, maxsplit=1)[0].strip()  # per-line options
        try:
            requirement = Requirement(content)
        except InvalidRequirement:
            continue  # paths and URLs are pip's business; we only look for prefect
        if canonicalize_name(requirement.name) == "prefect":
            return []
    return [Problem(REQUIREMENTS, None, "does not name prefect (the agent runs "
                                        "`prefect worker start`; add e.g. prefect>=3,<4)")]


def check_dockerfile(data: bytes, dockerignore: bytes) -> list[Problem]:
    """Flag COPY/ADD instructions that would put ``.env`` into the image."""
    ignored = _dockerignore_excludes_env(dockerignore)
    problems: list[Problem] = []
    for line, content in _join_continuations(data.decode("utf-8", "replace").splitlines()):
        words = content.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        sources = _copy_sources(words[1])
        if sources is None:
            continue
        for source in sources:
            src = source.strip()
            base = src.rstrip("/").rsplit("/", 1)[-1]
            if base and fnmatch.fnmatchcase(ENV_FILE, base) and base not in (".", "*"):
                problems.append(Problem(DOCKERFILE, line, f"{words[0].upper()} {src} copies "
                                        ".env into the image; its values are secrets and reach "
                                        "the agent as secure variables instead"))
            elif src.rstrip("/") in (".", "./", "*", "./*", "") and not ignored:
                problems.append(Problem(DOCKERFILE, line, f"{words[0].upper()} {src} copies the "
                                        "whole folder, .env included: add .env to .dockerignore "
                                        "or copy files by name"))
    return problems


def _copy_sources(args: str) -> list[str] | None:
    """Sources of a COPY/ADD (flags dropped); None when copying from another stage."""
    rest = args.strip()
    flags: list[str] = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    if any(f.startswith("--from") for f in flags):
        return None
    if rest.startswith("["):
        try:
            parts = json.loads(rest)
        except ValueError:
            return []
        items = [str(p) for p in parts] if isinstance(parts, list) else []
    else:
        items = rest.split()
    return items[:-1]


def _dockerignore_excludes_env(data: bytes) -> bool:
    excluded = False
    for raw in data.decode("utf-8", "replace").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").lstrip("/")
        if pattern.startswith("**/"):
            pattern = pattern[3:]
        if fnmatch.fnmatchcase(ENV_FILE, pattern):
            excluded = not negate
    return excluded


def _join_continuations(lines: list[str]) -> list[tuple[int, str]]:
    """(first line number, logical line) with backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        if not buffer:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1])
            continue
        buffer.append(line)
        out.append((start, " ".join(buffer)))
        buffer = []
    if buffer:
        out.append((start, " ".join(buffer)))
    return out
