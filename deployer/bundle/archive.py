"""Safe, streaming extraction of bundle archives (``.tar.gz`` and ``.zip``).

Threat model: anyone who can write to the bundles container. Every entry is checked before a
byte of it is written: absolute paths, ``..`` components, links, device files, duplicate names,
names that are not UTF-8. Limits on total uncompressed size, entry count and compression ratio are
enforced while decompressing (declared sizes are never trusted), so a bomb stops early. Files are
created with ``O_EXCL | O_NOFOLLOW`` under a destination folder that the caller made fresh; no
entry can name a path outside it. Problems are collected; limits stop the extraction at once.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from deployer.errors import Problem

CHUNK = 1024 * 1024
#: ratios are judged only past this much output: tiny, very compressible files are normal
RATIO_FLOOR_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")


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
    writer = _Writer(dest, limits, result)
    try:
        if kind == "tar.gz":
            _extract_tar(head, writer, label)
        else:
            _extract_zip(head, writer, label)
    except LimitExceeded as exc:
        result.problems.append(Problem(label, None, str(exc)))
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        result.problems.append(Problem(label, None, f"is a damaged {kind} archive ({_brief(exc)})"))
    if not result.problems and result.files == 0:
        result.problems.append(Problem(label, None, "is empty (no files)"))
    return result


# -- names --------------------------------------------------------------------------------------


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


# -- tar ----------------------------------------------------------------------------------------


def _extract_tar(raw: Readable, writer: _Writer, label: str) -> None:
    compressed = _Counter(raw)
    gz = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decompressed = _Inflater(compressed, gz, writer)
    with tarfile.open(fileobj=decompressed, mode="r|", encoding="utf-8", errors="surrogateescape") as tf:  # type: ignore[call-overload]
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
                writer.file(name or "", member.size, member.mode & 0o111 != 0, _chunks(source))
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

    def __init__(self, source: _Counter, decomp: zlib._Decompress, writer: _Writer) -> None:
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


# -- zip ----------------------------------------------------------------------------------------


def _extract_zip(raw: Readable, writer: _Writer, label: str) -> None:
    limits = writer.limits
    spool = writer.dest.parent / "archive.zip"
    size = 0
    with open(spool, "xb") as out:
        for chunk in _chunks(raw):
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


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, writer: _Writer) -> None:
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
                f"entry {shown} has a compression ratio above {writer.limits.max_ratio}:1"
            )
        with archive.open(info) as source:
            writer.file(name or "", info.file_size, mode & 0o111 != 0, _chunks(source))


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


# -- writing ------------------------------------------------------------------------------------


class _Writer:
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
        self.result.problems.append(Problem(name, None, reason))

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


# -- streams ------------------------------------------------------------------------------------


def _chunks(source: Readable) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


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


class _Counter:
    def __init__(self, source: Readable) -> None:
        self._source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.count += len(data)
        return data


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
