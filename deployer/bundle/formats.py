"""The two archive formats, read as streams: ``.tar.gz`` (decompressed here, so the size and
ratio limits cover tar's own headers too) and ``.zip`` (spooled to disk, its directory size checked
from the end record before zipfile reads it)."""

from __future__ import annotations

import os
import stat
import struct
import tarfile
import zipfile
import zlib
from typing import BinaryIO

from deployer.bundle.entries import (
    CHUNK,
    RATIO_FLOOR_BYTES,
    EntryWriter,
    LimitExceeded,
    Readable,
    chunks,
    printable,
    safe_name,
)


def extract_tar(raw: Readable, writer: EntryWriter, label: str) -> None:
    compressed = _Counter(raw)
    gz = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decompressed = _Inflater(compressed, gz, writer)
    # the inflater is a file-like object the stream mode reads (typeshed wants a full IO)
    with tarfile.open(fileobj=decompressed, mode="r|", encoding="utf-8",  # type: ignore[call-overload]
                      errors="surrogateescape") as tf:
        for member in tf:
            writer.count_entry()
            name, reason = safe_name(member.name)
            shown = member.name.encode("utf-8", "replace").decode("utf-8")
            if reason:
                writer.problem(shown, reason)
                continue
            if member.isdir():
                writer.directory(name or "")
            elif member.isreg():
                source = tf.extractfile(member)
                assert source is not None
                writer.file(name or "", member.size, member.mode & 0o111 != 0, chunks(source))
            else:
                writer.problem(shown, f"{_tar_kind(member)} entries are not allowed")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO"
    return "special"


class _Inflater:
    """A read-only file over the gunzipped stream that enforces size and ratio limits.

    The limit covers everything tar reads (headers and PAX records too), so no header can make
    tarfile hold an unbounded amount of memory.
    """

    def __init__(self, source: _Counter, decomp: zlib._Decompress, writer: EntryWriter) -> None:
        self._source = source
        self._decomp = decomp
        self._writer = writer
        self._buffer = b""
        self._out = 0
        self._cap = writer.limits.max_bytes + 1024 * (writer.limits.max_entries + 16)

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        while len(self._buffer) < want:
            if self._decomp.eof:
                # concatenated gzip members are legal gzip; anything else after the end is damage
                pending = self._decomp.unused_data or self._source.read(CHUNK)
                if not pending:
                    break
                self._decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                pending = self._decomp.unconsumed_tail or self._source.read(CHUNK)
                if not pending:
                    raise EOFError("compressed data ends early")
            piece = self._decomp.decompress(pending, CHUNK)
            self._out += len(piece)
            self._check()
            self._buffer += piece
        out, self._buffer = self._buffer[:want], self._buffer[want:]
        return out

    def _check(self) -> None:
        if self._out > self._cap:
            raise LimitExceeded(
                f"expands past the size limit of {self._writer.limits.max_bytes} bytes"
            )
        self._writer.check_ratio(self._out, self._source.count)


def extract_zip(raw: Readable, writer: EntryWriter, label: str) -> None:
    limits = writer.limits
    spool = writer.dest.parent / "archive.zip"
    size = 0
    with open(spool, "xb") as out:
        for chunk in chunks(raw):
            size += len(chunk)
            if size > limits.max_bytes + CHUNK:
                raise LimitExceeded(f"is larger than the size limit of {limits.max_bytes} bytes")
            out.write(chunk)
    try:
        with open(spool, "rb") as handle:
            declared = _zip_entry_count(handle)
            if declared is not None and declared > limits.max_entries:
                raise LimitExceeded(
                    f"has {declared} entries, more than the limit of {limits.max_entries}"
                )
            try:
                archive = zipfile.ZipFile(handle)
            except UnicodeDecodeError:
                writer.problem("", "an entry name is marked UTF-8 but is not UTF-8")
                return
            with archive:
                for info in archive.infolist():
                    _zip_member(archive, info, writer)
                    writer.check_ratio(writer.result.bytes, size)
    finally:
        spool.unlink(missing_ok=True)


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, writer: EntryWriter) -> None:
    writer.count_entry()
    raw_name, reason = _zip_name(info)
    shown = raw_name if raw_name is not None else info.filename
    if reason is None:
        name, reason = safe_name(raw_name or "")
    if reason:
        writer.problem(shown, reason)
        return
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode) if info.create_system == 3 else 0
    if info.flag_bits & 0x1:
        writer.problem(shown, "encrypted entries are not allowed")
    elif info.is_dir() or kind == stat.S_IFDIR:
        writer.directory(name or "")
    elif kind not in (0, stat.S_IFREG):
        label = {stat.S_IFLNK: "symbolic link", stat.S_IFCHR: "device file",
                 stat.S_IFBLK: "device file", stat.S_IFIFO: "FIFO"}.get(kind, "special")
        writer.problem(shown, f"{label} entries are not allowed")
    else:
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > writer.limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise LimitExceeded(
                f"entry {printable(shown)} has a compression ratio above {writer.limits.max_ratio}:1"
            )
        with archive.open(info) as source:
            writer.file(name or "", info.file_size, mode & 0o111 != 0, chunks(source))


def _zip_name(info: zipfile.ZipInfo) -> tuple[str | None, str | None]:
    if info.flag_bits & 0x800:
        return info.filename, None
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename, None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "name is not UTF-8"


def _zip_entry_count(handle: BinaryIO) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile loads the
    directory into memory (a forged directory of millions of entries would otherwise do so)."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_len = min(size, 65536 + 22)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    count = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if count == 0xFFFF:
        loc = tail.rfind(b"PK\x06\x07", 0, at)
        if loc < 0:
            return None
        offset = struct.unpack("<Q", tail[loc + 8 : loc + 16])[0]
        handle.seek(offset)
        record = handle.read(56)
        if record[:4] != b"PK\x06\x06":
            return None
        count = struct.unpack("<Q", record[32:40])[0]
    handle.seek(0)
    return int(count)


class _Counter:
    def __init__(self, source: Readable) -> None:
        self._source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        return data
