"""The three parts of a revision, each with its own digest and its own cost.

* **dependencies**: what the image is built from. The rule, in two sentences: *the dependencies
  are ``requirements.txt``, the ``Dockerfile``, ``.dockerignore`` and every file that a COPY or ADD
  brings into the image before the Dockerfile's last RUN (a RUN that mounts the build context
  makes every file one); everything else but ``.env`` is code.* A change of dependencies builds an
  image and rotates the agent. When it cannot tell (``COPY . .`` before a RUN), every file is a
  dependency: the safe side.
* **code**: everything else but ``.env``. A change of code alone neither builds nor rotates:
  the code is published to the code store and the deployments are re-registered to pull it.
* **config**: ``.env`` (its keyed digest, ``digest.config_digest``). A change restarts the agent
  from the same image.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from deployer.bundle.digest import CODE_PREFIX
from deployer.bundle.envfile import ENV_FILE
from deployer.bundle.tree import Tree

ALWAYS = ("requirements.txt", "Dockerfile", ".dockerignore")
#: what an image needs so that its flow runs can fetch code from blob storage (the Azure code
#: store's pull step is prefect-azure's)
#: the oldest prefect-azure whose pull step the deployer's tests run (against Azurite)
BLOB_PULL_FLOOR = "0.4.13"
BLOB_PULL_REQUIREMENT = f"prefect-azure[blob_storage]>={BLOB_PULL_FLOOR}"


@dataclass(frozen=True)
class Dependencies:
    digest: str
    files: tuple[str, ...]
    everything: bool  # every file is a dependency: code-only changes rebuild
    why: str


def dependencies_of(tree: Tree) -> Dependencies:
    dockerfile = _read(tree.root / "Dockerfile")
    files = sorted(e.path for e in tree.files if e.path != ENV_FILE)
    chosen, everything, why = _dependency_files(dockerfile, files)
    digest = hashlib.sha256(b"deployer-dependency-digest-v1\n")
    for entry in sorted(tree.files, key=lambda e: e.path):
        if entry.path in chosen:
            digest.update(f"{entry.path}\0{'x' if entry.executable else '-'}\0".encode())
            digest.update(hashlib.sha256((tree.root / entry.path).read_bytes()).digest())
    return Dependencies(CODE_PREFIX + digest.hexdigest(), tuple(sorted(chosen)), everything, why)


def _dependency_files(dockerfile: bytes, files: list[str]) -> tuple[set[str], bool, str]:
    instructions = _instructions(dockerfile.decode("utf-8", "replace"))
    runs = [i for i, (_, word, _) in enumerate(instructions) if word == "RUN"]
    chosen = {f for f in ALWAYS if f in files}
    if not runs:
        return chosen, False, ("the Dockerfile runs nothing: only requirements.txt and the "
                               "Dockerfile build it")
    for line, word, rest in instructions:
        if word == "RUN" and "--mount" in rest and "bind" in rest:
            return set(files), True, (f"Dockerfile:{line}: a RUN mounts the build context, so "
                                      "every file builds the image")
    last_run = runs[-1]
    for line, word, rest in instructions[:last_run]:
        if word not in ("COPY", "ADD"):
            continue
        sources = _sources(rest)
        if sources is None:
            continue  # from another stage or a URL: not the module's files
        for source in sources:
            pattern = source.strip().removeprefix("./") or "*"
            if source.strip().rstrip("/") in (".", "./", "*", "") or pattern in ("*", "**"):
                return set(files), True, (f"Dockerfile:{line}: {word} {source} before the RUN on line "
                                          f"{instructions[last_run][0]} makes every file part of the image")
            matched = {f for f in files if fnmatch.fnmatchcase(f, pattern)
                       or f.startswith(pattern.rstrip("/") + "/")}
            chosen |= matched
    return chosen, False, ("requirements.txt, the Dockerfile and what it copies before its last "
                           f"RUN (line {instructions[last_run][0]}) build the image")


def _instructions(text: str) -> list[tuple[int, str, str]]:
    out = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        words = " ".join(buffer).split(None, 1)
        buffer = []
        if words:
            out.append((start, words[0].upper(), words[1] if len(words) > 1 else ""))
    return out


def _sources(rest: str) -> list[str] | None:
    args = rest.strip()
    while args.startswith("--"):
        flag, _, args = args.partition(" ")
        if flag.startswith("--from"):
            return None
        args = args.lstrip()
    if args.startswith("["):
        try:
            items = [str(p) for p in json.loads(args)]
        except ValueError:
            return []
    else:
        items = args.split()
    sources = items[:-1]
    if any(re.match(r"^[a-z]+://", s) for s in sources):
        return None
    return sources


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def pulls_from_blob(requirements: bytes) -> bool:
    """Whether ``requirements.txt`` installs prefect-azure's blob storage support (the extra, or
    prefect-azure next to azure-storage-blob)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    names: dict[str, set[str]] = {}
    too_old = False
    for line in requirements.decode("utf-8", "replace").splitlines():
        text = re.sub(r"(^|\s)#.*$", "", line).strip()
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        names.setdefault(name, set()).update(requirement.extras)
        if name == "prefect-azure":  # pinned or capped below the floor
            too_old |= any(s.operator in ("==", "===", "<", "<=", "~=")
                           and Version(s.version.rstrip(".*")) < Version(BLOB_PULL_FLOOR)
                           for s in requirement.specifier)
    azure = names.get("prefect-azure")
    return azure is not None and not too_old and ("blob_storage" in azure or "azure-storage-blob" in names)
