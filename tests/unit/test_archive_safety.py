"""Hostile archives: each attack is reported, nothing lands outside the work folder."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from deployer.bundle import BundleLimits, load_archive
from deployer.errors import BundleInvalid
from tests.builders import module_files, module_tar, tar_gz, zip_bytes

LIMITS = BundleLimits(max_bytes=5 * 1024 * 1024, max_entries=50, max_ratio=100)


def load(data: bytes, workdir: Path, label: str = "demo.tar.gz", limits: BundleLimits = LIMITS,
         expected: str | None = "demo"):
    return load_archive(io.BytesIO(data), workdir, limits, label=label, expected_name=expected)


def problems_of(data: bytes, tmp_path: Path, **kwargs) -> list[str]:
    workdir = tmp_path / "work"
    workdir.mkdir(parents=True)
    with pytest.raises(BundleInvalid) as info:
        load(data, workdir, **kwargs)
    return [str(p) for p in info.value.problems]


def everything_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


def module_entries(prefix: str = "demo") -> list[tuple[str, bytes]]:
    return [(f"{prefix}/{k}", v) for k, v in module_files().items()]


def test_valid_tar_gz_loads(tmp_path: Path) -> None:
    module = load(module_tar(), tmp_path)
    assert module.name == "demo"
    assert [d.name for d in module.deployments] == ["hello"]


def test_valid_zip_with_contents_at_the_root_loads(tmp_path: Path) -> None:
    data = zip_bytes(list(module_files().items()))
    module = load(data, tmp_path, label="demo.zip")
    assert module.name == "demo" and module.tree.has("flow.py")


def test_absolute_path_is_rejected_and_not_written(tmp_path: Path) -> None:
    target = Path("/tmp") / f"evil-{uuid.uuid4().hex}"
    data = tar_gz([*module_entries(), (str(target), b"pwned")])
    problems = problems_of(data, tmp_path)
    assert any("absolute path" in p for p in problems)
    assert not target.exists()


@pytest.mark.parametrize("name", ["demo/../../escaped.txt", "../escaped.txt", "demo/a/../../../escaped.txt"])
def test_parent_components_are_rejected_and_not_written(tmp_path: Path, name: str) -> None:
    problems = problems_of(tar_gz([*module_entries(), (name, b"pwned")]), tmp_path)
    assert any("'..'" in p for p in problems)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_backslash_traversal_in_zip_is_rejected(tmp_path: Path) -> None:
    data = zip_bytes([*module_entries(), ("demo\\..\\..\\escaped.txt", b"pwned")])
    problems = problems_of(data, tmp_path, label="demo.zip")
    assert any("'..'" in p for p in problems)
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("kind,expected", [
    (tarfile.SYMTYPE, "symbolic link"),
    (tarfile.LNKTYPE, "hard link"),
    (tarfile.CHRTYPE, "device file"),
    (tarfile.BLKTYPE, "device file"),
    (tarfile.FIFOTYPE, "FIFO"),
])
def test_links_and_special_files_in_tar_are_rejected(tmp_path: Path, kind: bytes, expected: str) -> None:
    info = tarfile.TarInfo("demo/special")
    info.type = kind
    info.linkname = "/etc/passwd"
    problems = problems_of(tar_gz([*module_entries(), info]), tmp_path)
    assert any(expected in p for p in problems)
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_symlink_in_zip_is_rejected(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("demo/link")
    link.create_system = 3
    link.external_attr = (0o120777 << 16)
    data = zip_bytes([*module_entries(), (link, b"/etc/passwd")])
    problems = problems_of(data, tmp_path, label="demo.zip")
    assert any("symbolic link" in p for p in problems)


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    data = tar_gz([*module_entries(), ("demo/flow.py", b"print('second copy')\n")])
    problems = problems_of(data, tmp_path)
    assert any("duplicate name" in p for p in problems)


def test_non_utf8_name_in_tar_is_rejected(tmp_path: Path) -> None:
    bad = b"demo/bad\xff\xfe.py".decode("utf-8", "surrogateescape")
    problems = problems_of(tar_gz([*module_entries(), (bad, b"x = 1\n")]), tmp_path)
    assert any("not UTF-8" in p for p in problems)


def test_non_utf8_name_in_zip_is_rejected(tmp_path: Path) -> None:
    data = zip_bytes([*module_entries(), ("demo/AAAA.py", b"x = 1\n")])
    data = data.replace(b"demo/AAAA.py", b"demo/\xff\xfeAA.py")  # raw bytes, no UTF-8 flag
    problems = problems_of(data, tmp_path, label="demo.zip")
    assert any("not UTF-8" in p for p in problems)


@pytest.mark.parametrize("name", ["demo/esc\x1b[31m.py", "demo/new\nline.py", "demo/del\x7f.py"])
def test_names_with_control_characters_are_rejected_in_both_formats(tmp_path: Path, name: str) -> None:
    for data, label in ((tar_gz([*module_entries(), (name, b"x = 1\n")]), "demo.tar.gz"),
                        (zip_bytes([*module_entries(), (name, b"x = 1\n")]), "demo.zip")):
        problems = problems_of(data, tmp_path / label, label=label)
        assert any("control character in name" in p for p in problems), problems
        assert all("\x1b" not in p and "\n" not in p.strip() for p in problems)


def test_empty_archives_are_rejected(tmp_path: Path) -> None:
    assert any("empty" in p for p in problems_of(tar_gz([]), tmp_path / "t"))
    assert any("empty" in p for p in problems_of(zip_bytes([]), tmp_path / "z", label="demo.zip"))


def test_something_that_is_not_an_archive_is_rejected(tmp_path: Path) -> None:
    problems = problems_of(b"#!/bin/sh\necho definitely not a tarball\n", tmp_path)
    assert any("not an archive" in p for p in problems)


def test_truncated_archive_is_reported_as_damaged(tmp_path: Path) -> None:
    data = module_tar()
    problems = problems_of(data[: len(data) // 2], tmp_path)
    assert any("damaged" in p for p in problems)


def test_module_name_must_match_the_blob_name(tmp_path: Path) -> None:
    problems = problems_of(module_tar("demo"), tmp_path, label="other.tar.gz", expected="other")
    assert any("holds module 'demo' but its name says 'other'" in p for p in problems)


def test_too_many_entries_is_rejected(tmp_path: Path) -> None:
    extra = [(f"demo/data/{n}.txt", b"x") for n in range(LIMITS.max_entries)]
    problems = problems_of(tar_gz([*module_entries(), *extra]), tmp_path)
    assert any("more than the limit of 50 entries" in p for p in problems)


def test_zip_with_too_many_entries_is_refused_before_reading_its_directory(tmp_path: Path) -> None:
    extra = [(f"demo/data/{n}.txt", b"x") for n in range(LIMITS.max_entries)]
    problems = problems_of(zip_bytes([*module_entries(), *extra]), tmp_path, label="demo.zip")
    assert any("entries, more than the limit of 50" in p for p in problems)


def test_uncompressed_size_over_the_limit_is_rejected(tmp_path: Path) -> None:
    noise = os.urandom(LIMITS.max_bytes + 1024)  # incompressible: only the size limit applies
    problems = problems_of(tar_gz([*module_entries(), ("demo/big.bin", noise)]), tmp_path)
    assert any("size limit" in p for p in problems)


def test_gzip_bomb_stops_on_the_ratio(tmp_path: Path) -> None:
    zeros = b"\0" * (4 * 1024 * 1024)  # 4 MiB of zeros gzip to ~4 KiB: ratio ~1000:1
    problems = problems_of(tar_gz([*module_entries(), ("demo/zeros.bin", zeros)]), tmp_path)
    assert any("compression ratio above 100:1" in p for p in problems)
    assert not list(tmp_path.rglob("zeros.bin")) or all(
        p.stat().st_size < len(zeros) for p in tmp_path.rglob("zeros.bin"))


def test_zip_bomb_stops_on_the_ratio(tmp_path: Path) -> None:
    zeros = b"\0" * (4 * 1024 * 1024)
    problems = problems_of(zip_bytes([*module_entries(), ("demo/zeros.bin", zeros)]), tmp_path,
                           label="demo.zip")
    assert any("compression ratio above 100:1" in p for p in problems)


def test_zip_that_lies_about_its_size_cannot_write_more_than_it_declares(tmp_path: Path) -> None:
    data = zip_bytes([*module_entries(), ("demo/data.txt", b"A" * 4096)])
    # forge the declared uncompressed size (local header and central directory) down to 16 bytes
    size4096 = (4096).to_bytes(4, "little")
    data = data.replace(size4096, (16).to_bytes(4, "little"))
    problems = problems_of(data, tmp_path, label="demo.zip")
    assert any("damaged" in p for p in problems)


def test_rejections_write_nothing_outside_the_work_folder(tmp_path: Path) -> None:
    before = everything_under(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    data = tar_gz([*module_entries(), ("../sibling.txt", b"x"), ("/abs.txt", b"y")])
    with pytest.raises(BundleInvalid):
        load(data, workdir)
    after = everything_under(tmp_path)
    assert {p for p in after - before if workdir not in p.parents and p != workdir} == set()
