"""The function app's package: the zip `func azure functionapp publish` and `azd deploy` would
upload, built here so what ships can be seen and tested.

Both tools read ``.funcignore`` at the app's root (gitignore syntax) and leave out ``.git``; what
remains is zipped as it is, and Flex Consumption's remote build installs ``requirements.txt``.
The app needs ``function_app.py``, ``host.json``, ``requirements.txt`` and ``deployer/``; never a
virtualenv, ``node_modules``, tests, local settings or a ``.env``, which :func:`forbidden` names.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

FUNCIGNORE = ".funcignore"
#: what the app must hold to be indexed and to run
REQUIRED = ("function_app.py", "host.json", "requirements.txt", "deployer/__init__.py")
#: what a package must never hold, whatever .funcignore says (secrets, machines' own files)
_FORBIDDEN_DIRS = {".venv", "venv", "node_modules", ".git", "tests", ".demo", ".deployer", "__pycache__"}
_FORBIDDEN_FILES = {"local.settings.json", ".env"}


@dataclass(frozen=True)
class Package:
    files: tuple[str, ...]
    bytes: int  # the files' size
    zip_bytes: int = 0  # the archive's, once written

    def to_dict(self) -> dict[str, object]:
        return {"files": list(self.files), "file_count": len(self.files), "bytes": self.bytes,
                "zip_bytes": self.zip_bytes}


def _spec(root: Path) -> Any:  # a pathspec.PathSpec (imported when needed)
    import pathspec

    path = root / FUNCIGNORE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return pathspec.GitIgnoreSpec.from_lines(lines)


def package_files(root: Path) -> Package:
    """The files the package holds, relative to ``root``, as the publishing tools choose them."""
    spec, files, size = _spec(root), [], 0
    for folder, dirs, names in os.walk(root):
        rel_dir = PurePosixPath(Path(folder).relative_to(root).as_posix())
        kept_dirs = []
        for name in sorted(dirs):
            rel = (rel_dir / name).as_posix().removeprefix("./")
            if name != ".git" and not spec.match_file(rel + "/"):
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(names):
            rel = (rel_dir / name).as_posix().removeprefix("./")
            if not spec.match_file(rel):
                files.append(rel)
                size += (Path(folder) / name).stat().st_size
    return Package(tuple(sorted(files)), size)


def forbidden(package: Package) -> list[str]:
    """Files the package must not hold (and the files it lacks), each named with why."""
    found = []
    for rel in package.files:
        parts = PurePosixPath(rel).parts
        bad_dir = next((p for p in parts[:-1] if p in _FORBIDDEN_DIRS), None)
        if bad_dir:
            found.append(f"{rel}: inside {bad_dir}/")
        elif parts[-1] in _FORBIDDEN_FILES or parts[-1].endswith(".env"):
            found.append(f"{rel}: local settings or secrets")
    found += [f"{rel}: missing (the app needs it)" for rel in REQUIRED if rel not in package.files]
    return found


def write_package(root: Path, out: Path) -> Package:
    """Zip the package to ``out`` (deterministic: sorted, fixed times)."""
    package = package_files(root)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in package.files:
            info = zipfile.ZipInfo(rel, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (root / rel).read_bytes())
    return Package(package.files, package.bytes, out.stat().st_size)
