"""Safe, streaming extraction of bundle archives (``.tar.gz`` and ``.zip``).

Threat model: anyone who can write to the bundles container. Every entry is checked before a
byte of it is written: absolute paths, ``..`` components, links, device files, duplicate names,
names that are not UTF-8. Limits on total uncompressed size, entry count and compression ratio are
enforced while decompressing (declared sizes are never trusted), so a bomb stops early. Files are
created with ``O_EXCL | O_NOFOLLOW`` under a destination folder that the caller made fresh; no
entry can name a path outside it. Problems are collected; limits stop the extraction at once.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from deployer.bundle.entries import (
    CHUNK,
    BundleLimits,
    EntryWriter,
    Extraction,
    LimitExceeded,
    Readable,
    safe_name,
)
from deployer.bundle.formats import extract_tar, extract_zip
from deployer.errors import Problem

__all__ = ["ARCHIVE_SUFFIXES", "BundleLimits", "ChunkReader", "Readable", "archive_kind", "extract",
           "safe_name"]
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")


def archive_kind(head: bytes) -> str | None:
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    return None


def extract(stream: Readable, workdir: Path, limits: BundleLimits, *, label: str) -> Extraction:
    """Extract ``stream`` under ``workdir``, a fresh empty folder the caller owns; the tree lands
    in ``workdir/tree``. ``label`` names the archive in problems."""
    dest = workdir / "tree"
    dest.mkdir(mode=0o700)
    result = Extraction(dest=dest)
    head = _Peek(stream)
    kind = archive_kind(head.peek(4))
    if kind is None:
        result.problems.append(
            Problem(label, None, "is not an archive (expected a .tar.gz or .zip file)")
        )
        return result
    writer = EntryWriter(dest, limits, result)
    try:
        if kind == "tar.gz":
            extract_tar(head, writer, label)
        else:
            extract_zip(head, writer, label)
    except LimitExceeded as exc:
        result.problems.append(Problem(label, None, str(exc)))
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        result.problems.append(Problem(label, None, f"is a damaged {kind} archive ({_brief(exc)})"))
    if not result.problems and result.files == 0:
        result.problems.append(Problem(label, None, "is empty (no files)"))
    return result


class ChunkReader:
    """A ``read()``-able view of an iterator of byte chunks (a blob download), no whole copy."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        while len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class _Peek:
    """Lets us look at the first bytes of a non-seekable stream and then read it whole."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._head = b""

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            more = self._source.read(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._source.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._source.read(size - len(data))
            return data
        return self._source.read(size)


def _brief(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
