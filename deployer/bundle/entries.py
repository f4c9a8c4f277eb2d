"""What an archive entry may be, and writing accepted entries safely.

Names are checked before anything is written (absolute paths, ``..``, control characters, names
that are not UTF-8); the writer creates files with ``O_EXCL | O_NOFOLLOW`` under a folder the
caller made fresh, refuses duplicates, and counts entries, bytes and the compression ratio against
the limits as the bytes arrive (declared sizes are never trusted).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from deployer.errors import Problem

CHUNK = 1024 * 1024
#: ratios are judged only past this much output: tiny, very compressible files are normal
RATIO_FLOOR_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class BundleLimits:
    max_bytes: int = 200 * 1024 * 1024
    max_entries: int = 10_000
    max_ratio: int = 100


class Readable(Protocol):
    """Anything with ``read(size)``: a file, a socket stream, a blob download."""

    def read(self, size: int = -1, /) -> bytes: ...


class LimitExceeded(Exception):
    """Internal: aborts an extraction; turned into a Problem by ``extract``."""


@dataclass
class Extraction:
    """What came out of an archive: the folder, and every problem found on the way."""

    dest: Path
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def printable(name: str) -> str:
    """A name as it may be shown: control characters escaped (a name is input; shown raw, it
    could rewrite the terminal or forge lines of a log)."""
    return "".join(c if ord(c) >= 32 and c != "\x7f" else f"\\x{ord(c):02x}" for c in name)


def safe_name(raw: str) -> tuple[str | None, str | None]:
    """Return (normalized relative POSIX path, None) or (None, reason)."""
    if any(ord(c) < 32 or c == "\x7f" for c in raw):
        return None, "control character in name"
    if any("\udc80" <= c <= "\udcff" for c in raw):
        return None, "name is not UTF-8"
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        return None, "absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "'..' path component"
    if not parts:
        return "", None
    return "/".join(parts), None



class EntryWriter:
    """Creates entries under ``dest``, counting entries, bytes and ratio against the limits."""

    def __init__(self, dest: Path, limits: BundleLimits, result: Extraction) -> None:
        self.dest = dest
        self.limits = limits
        self.result = result
        self._root = os.path.realpath(dest)
        self._seen: set[str] = set()
        self._entries = 0
        self._compressed_read = 0

    def problem(self, name: str, reason: str) -> None:
        self.result.problems.append(Problem(printable(name), None, reason))

    def count_entry(self) -> None:
        self._entries += 1
        if self._entries > self.limits.max_entries:
            raise LimitExceeded(f"has more than the limit of {self.limits.max_entries} entries")

    def check_ratio(self, out: int, compressed: int) -> None:
        if out > RATIO_FLOOR_BYTES and out > self.limits.max_ratio * max(compressed, 1):
            raise LimitExceeded(f"has a compression ratio above {self.limits.max_ratio}:1")

    def _claim(self, name: str) -> str | None:
        if name in self._seen:
            self.problem(name, "duplicate name")
            return None
        self._seen.add(name)
        target = os.path.join(self._root, name)
        if os.path.commonpath([self._root, os.path.realpath(target)]) != self._root:
            self.problem(name, "resolves outside the bundle")  # defence in depth
            return None
        return target

    def directory(self, name: str) -> None:
        if not name:
            return
        target = self._claim(name + "/")
        if target is not None:
            try:
                os.makedirs(target, mode=0o755, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                self.problem(name, "is both a file and a folder")

    def file(self, name: str, declared: int, executable: bool, chunks: Iterator[bytes]) -> None:
        if not name:
            self.problem(name, "file entry without a name")
            return
        if self.result.bytes + declared > self.limits.max_bytes:
            raise LimitExceeded(
                f"is larger than the size limit of {self.limits.max_bytes} bytes uncompressed"
            )
        target = self._claim(name)
        if target is None:
            return
        try:
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o755 if executable else 0o644)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            self.problem(name, "is both a file and a folder")
            return
        except OSError as exc:
            self.problem(name, f"cannot be created ({exc.strerror})")
            return
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                self.result.bytes += len(chunk)
                if self.result.bytes > self.limits.max_bytes:
                    raise LimitExceeded(
                        f"is larger than the size limit of {self.limits.max_bytes} bytes uncompressed"
                    )
                out.write(chunk)
        self.result.files += 1


def chunks(source: Readable) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk
