"""Walking a module folder: which files belong to the bundle, in a canonical order.

The order is the sorted list of relative POSIX paths, so packing and digests do not depend on
the order the file system returns entries in. Links and special files are problems (a link could
pull a file from outside the module into the image); tool and cache folders are skipped.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deployer.bundle.archive import BundleLimits
from deployer.errors import Problem

#: folders that never belong in a bundle: VCS, caches, virtualenvs, the deployer's own
IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".tox", ".nox", ".venv", "venv", ".deployer",
})
IGNORED_FILES = frozenset({".DS_Store", "Thumbs.db"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative POSIX path
    size: int
    executable: bool


@dataclass(frozen=True)
class Tree:
    root: Path
    files: tuple[FileEntry, ...]
    problems: tuple[Problem, ...]

    def has(self, path: str) -> bool:
        return any(f.path == path for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def is_ignored(name: str, *, is_dir: bool) -> bool:
    if is_dir:
        return name in IGNORED_DIRS
    return name in IGNORED_FILES or name.endswith(IGNORED_SUFFIXES)


def scan(root: Path, limits: BundleLimits) -> Tree:
    files: list[FileEntry] = []
    problems: list[Problem] = []
    entries = 0
    total = 0
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            children = sorted(it, key=lambda e: e.name)
        for entry in children:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                problems.append(Problem(shown, None, "name is not UTF-8"))
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if not is_ignored(entry.name, is_dir=entry.is_dir()):
                    problems.append(Problem(rel, None, "symbolic links are not allowed in a bundle "
                                                       "(copy the file in instead)"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if is_ignored(entry.name, is_dir=True) or (Path(entry.path) / "pyvenv.cfg").exists():
                    continue
                stack.append(rel)
                entries += 1
            elif stat.S_ISREG(st.st_mode):
                if is_ignored(entry.name, is_dir=False):
                    continue
                files.append(FileEntry(rel, st.st_size, bool(st.st_mode & 0o111)))
                entries += 1
                total += st.st_size
            else:
                problems.append(Problem(rel, None, "special files (devices, FIFOs, sockets) "
                                                   "are not allowed in a bundle"))
    if entries > limits.max_entries:
        problems.append(Problem("", None, f"has {entries} entries, more than the limit of "
                                          f"{limits.max_entries} (DEPLOYER_MAX_BUNDLE_ENTRIES)"))
    if total > limits.max_bytes:
        problems.append(Problem("", None, f"holds {total} bytes, more than the limit of "
                                          f"{limits.max_bytes} (DEPLOYER_MAX_BUNDLE_MB)"))
    files.sort(key=lambda f: f.path)
    return Tree(root=root, files=tuple(files), problems=tuple(problems))


def copy_files(source: Path, target: Path, *,
               leave_out: Callable[[str], bool] = lambda path: False) -> None:
    """Copy the files of a module folder that passed validation (under the real limits) to
    ``target``, keeping only whether each is executable, without the paths ``leave_out`` names."""
    tree = scan(source, BundleLimits(max_bytes=1 << 40, max_entries=1 << 20))
    for entry in tree.files:
        if leave_out(entry.path):
            continue
        dest = target / entry.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / entry.path, dest)
        dest.chmod(0o755 if entry.executable else 0o644)
