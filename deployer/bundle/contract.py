"""The module contract: what a ``flows/<module>/`` folder must hold, checked all at once.

``requirements.txt`` naming prefect and referring to no file outside the module, a
``Dockerfile`` that never copies ``.env`` into the image and puts the module's code where the
deployments run (``/opt/prefect/flows/<module>``), a ``.env`` (may be empty) with valid syntax and
values an environment can carry, and a ``prefect.yaml`` whose deployments point at flow functions
that exist and whose every setting Prefect would accept. A module name must also make names that
Azure and Prefect accept. Every problem is reported, with file and line where there is one; every
file is read within a bound, and a file over it is a problem, never read in part.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from deployer.bundle.deployment_config import check_deployment
from deployer.bundle.entrypoint import check_entrypoint
from deployer.bundle.env_reads import check_env_reads
from deployer.bundle.envfile import ENV_FILE, EnvFile, overlay_of, parse_env
from deployer.bundle.prefect_yaml import PREFECT_YAML, DeploymentSpec, parse_deployments
from deployer.bundle.sizing import NO_OPTIONS, ModuleOptions
from deployer.bundle.tree import Tree
from deployer.errors import Problem

MODULE_NAME = re.compile(r"[a-z][a-z0-9-]{1,30}\Z")
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
REQUIRED = (REQUIREMENTS, DOCKERFILE, ENV_FILE, PREFECT_YAML)
MAX_SMALL_FILE = 1024 * 1024
#: where the image must hold the module's code: the registered deployments run there
CODE_DIR = "/opt/prefect/flows/{module}"


@dataclass(frozen=True)
class ModuleCheck:
    name: str
    env: EnvFile
    deployments: tuple[DeploymentSpec, ...]
    problems: tuple[Problem, ...]
    #: what is worth saying but is no problem (``env_reads``: a variable read that may be None)
    notes: tuple[str, ...] = ()
    #: prefect.yaml's own ``deployer:`` section (``sizing``)
    options: ModuleOptions = NO_OPTIONS
    #: each ``.env.<environment>`` there is: that environment's values over ``.env``'s
    env_overlays: tuple[tuple[str, EnvFile], ...] = ()


def check_name(name: str) -> list[Problem]:
    if not MODULE_NAME.match(name):
        return [Problem("", None, f"module name {name!r} is invalid: use 2-31 characters, "
                                  "lowercase letters, digits and '-', starting with a letter")]
    if "--" in name or name.endswith("-"):
        return [Problem("", None, f"module name {name!r} is invalid: no '--' and no '-' at the "
                                  "end (agents are container groups named <prefix>-<module>-<time>, "
                                  "and Azure refuses consecutive hyphens in those)")]
    if name.startswith("prefect"):
        return [Problem("", None, f"module name {name!r} is invalid: Prefect reserves work pool "
                                  "names that start with 'prefect' (each module is a work pool)")]
    return []


def check_module(tree: Tree, name: str) -> ModuleCheck:
    problems: list[Problem] = [*check_name(name), *tree.problems]
    root = tree.root
    for required in REQUIRED:
        if not tree.has(required):
            problems.append(Problem(required, None, _MISSING[required]))
    env = EnvFile()
    deployments: list[DeploymentSpec] = []
    options = NO_OPTIONS
    small: dict[str, bytes] = {}
    for rel in (REQUIREMENTS, DOCKERFILE, ENV_FILE, DOCKERIGNORE):
        data = _small(root, rel, problems) if tree.has(rel) else None
        if data is not None:
            small[rel] = data
    if REQUIREMENTS in small:
        problems.extend(check_requirements(small[REQUIREMENTS]))
        problems.extend(check_requirement_files(small[REQUIREMENTS], tree))
    if DOCKERFILE in small:
        problems.extend(check_dockerfile(small[DOCKERFILE], small.get(DOCKERIGNORE, b"")))
        problems.extend(check_code_location(small[DOCKERFILE], name))
        problems.extend(check_entrypoint(small[DOCKERFILE], DOCKERFILE))
    notes: list[str] = []
    if ENV_FILE in small:
        env = parse_env(small[ENV_FILE])
        problems.extend(env.problems)
        if not env.problems:  # what the code reads, against what .env sets
            found, notes = check_env_reads(tree, frozenset(env.keys))
            problems.extend(found)
    overlays = []
    for entry in tree.files:
        environment = overlay_of(entry.path)
        data = _small(root, entry.path, problems) if environment else None
        if environment and data is not None:
            overlay = parse_env(data, filename=entry.path)
            problems.extend(overlay.problems)
            overlays.append((environment, overlay))
    if tree.has(PREFECT_YAML):
        deployments, found, options = parse_deployments(root)
        problems.extend(found)
        for spec in deployments:
            problems.extend(check_deployment(spec, name))
    return ModuleCheck(name=name, env=env, deployments=tuple(deployments),
                       problems=tuple(problems), notes=tuple(notes), options=options,
                       env_overlays=tuple(overlays))


_MISSING = {
    REQUIREMENTS: "is missing (list the flow's Python packages, prefect included)",
    DOCKERFILE: "is missing (the image the agent runs; `deployer new` writes one)",
    ENV_FILE: "is missing (it may be empty; its values reach the agent as secure variables)",
    PREFECT_YAML: "is missing (it declares the module's Prefect deployments)",
}


def _small(root: Path, rel: str, problems: list[Problem]) -> bytes | None:
    """The whole file, or None (and a problem) when it is larger than the bound: a file is
    never judged by its first part only."""
    with open(root / rel, "rb") as handle:
        data = handle.read(MAX_SMALL_FILE + 1)
    if len(data) > MAX_SMALL_FILE:
        problems.append(Problem(rel, None, f"is larger than {MAX_SMALL_FILE // 1024} KiB"))
        return None
    return data


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


_OPTION_WITH_FILE = re.compile(r"^(-r|-c|-e|--requirement|--constraint|--editable)(=|\s+|$)(.*)$")


def check_requirement_files(data: bytes, tree: Tree) -> list[Problem]:
    """Lines that read files (``-r``, ``-c``, ``-e``, local paths, ``file:`` URLs) must name files
    inside the module: the image is built from the module's folder alone."""
    problems = []
    for line, content in _join_continuations(data.decode("utf-8", "replace").splitlines()):
        content = re.sub(r"(^|\s)#.*$", "", content).strip()
        if not content:
            continue
        target = None
        option = _OPTION_WITH_FILE.match(content)
        if option:
            target = option.group(3).strip()
        elif content.startswith((".", "/", "~")) or content.lower().startswith("file:"):
            target = content.split()[0]
        if target is None:
            continue
        path = re.sub(r"^file:(//)?", "", target, flags=re.IGNORECASE).split("#", 1)[0]
        if "://" in path:  # -e git+https://... : a URL, not a file
            continue
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if path.startswith(("/", "~")) or ".." in parts:
            problems.append(Problem(REQUIREMENTS, line, f"{target} is outside the module: the "
                                    "image is built from the module's folder alone; copy what it "
                                    "needs into the module"))
        elif parts and not (tree.has("/".join(parts)) or any(
                f.path.startswith("/".join(parts) + "/") for f in tree.files)):
            problems.append(Problem(REQUIREMENTS, line, f"{target} does not exist in the module"))
    return problems


def check_code_location(data: bytes, module: str) -> list[Problem]:
    """Some COPY or ADD must put files in the module's code folder, the working directory of its
    registered deployments (WORKDIR is followed, as Docker does)."""
    code_dir = CODE_DIR.format(module=module)
    workdir = "/"
    last_from = 1
    for line, content in _join_continuations(data.decode("utf-8", "replace").splitlines()):
        words = content.strip().split(None, 1)
        if not words:
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            workdir, last_from = "/", line
        elif instruction == "WORKDIR" and len(words) == 2:
            workdir = _join(workdir, words[1].strip().strip('"'))
        elif instruction in ("COPY", "ADD") and len(words) == 2:
            args = words[1].strip()
            if _copy_sources(args) is None:  # COPY --from another stage: not the module's files
                continue
            dest = _copy_dest(args)
            if dest and _within(_join(workdir, dest), code_dir):
                return []
    return [Problem(DOCKERFILE, last_from, f"no COPY or ADD puts the module's code in {code_dir}, "
                    "where its deployments run; add e.g. WORKDIR "
                    f"{code_dir} and COPY . ./ (with .env in .dockerignore)")]


def _copy_dest(args: str) -> str:
    rest = args.strip()
    while rest.startswith("--"):
        rest = rest.partition(" ")[2].lstrip()
    if rest.startswith("["):
        try:
            parts = json.loads(rest)
        except ValueError:
            return ""
        return str(parts[-1]) if isinstance(parts, list) and parts else ""
    items = rest.split()
    return items[-1] if len(items) >= 2 else ""


def _join(base: str, path: str) -> str:
    joined = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
    parts: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


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
