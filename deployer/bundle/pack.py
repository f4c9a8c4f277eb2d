"""Deterministic packing: the same folder gives byte-identical ``.tar.gz`` archives.

Entries are written in path order with mtime 0, uid/gid 0, no owner names and modes normalized to
0644/0755; the gzip header carries no file name and mtime 0. Each file is read once: its SHA-256
for the code digest is taken while it streams into the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from collections.abc import Collection
from dataclasses import dataclass
from typing import IO, BinaryIO

from deployer.bundle.digest import CodeDigest
from deployer.bundle.tree import Tree

CHUNK = 1024 * 1024
#: gzip's default level, what `tar -cz` uses
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Packed:
    code_digest: str
    archive_sha256: str
    archive_bytes: int
    files: int


def pack(tree: Tree, out: IO[bytes], *, prefix: str = "", exclude: Collection[str] = ()) -> Packed:
    """Write ``tree`` as a tar.gz to ``out``; entries are ``prefix/path`` (or ``path``).

    ``exclude`` drops files from the archive (the build context leaves out ``.env``); the code
    digest never covers ``.env`` either way.
    """
    counted = _HashingWriter(out)
    digest = CodeDigest()
    written = 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=counted, mtime=0,
                       compresslevel=GZIP_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in tree.files:
            with open(tree.root / entry.path, "rb") as source:
                reader = _HashingReader(source)
                if entry.path in exclude:
                    while reader.read(CHUNK):
                        pass
                else:
                    info = tarfile.TarInfo(f"{prefix}/{entry.path}" if prefix else entry.path)
                    info.size = entry.size
                    info.mode = 0o755 if entry.executable else 0o644
                    info.mtime = 0
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, reader)
                    written += 1
                if reader.size != entry.size:
                    raise OSError(f"{entry.path} changed while it was being packed")
            digest.add(entry.path, entry.executable, entry.size, reader.hexdigest())
    return Packed(code_digest=digest.value(), archive_sha256=counted.hexdigest(),
                  archive_bytes=counted.size, files=written)


def code_digest_of(tree: Tree) -> str:
    """The code digest without writing an archive (for folders that were extracted)."""
    return code_manifest_of(tree).value()


def code_manifest_of(tree: Tree) -> CodeDigest:
    """The code digest and its manifest (``bundle.manifest``) of a folder."""
    digest = CodeDigest()
    for entry in tree.files:
        with open(tree.root / entry.path, "rb") as source:
            reader = _HashingReader(source)
            while reader.read(CHUNK):
                pass
        digest.add(entry.path, entry.executable, reader.size, reader.hexdigest())
    return digest


class _HashingReader:
    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _HashingWriter:
    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
