"""Deterministic packing and the two digests."""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
from pathlib import Path

from deployer.bundle import BundleLimits, config_digest, load_archive, load_folder, pack
from tests.builders import module_files, write_module, zip_bytes

LIMITS = BundleLimits()
KEY = "k" * 32


def packed(root: Path) -> tuple[bytes, str]:
    module = load_folder(root, LIMITS)
    out = io.BytesIO()
    result = pack(module.tree, out, prefix=module.name)
    return out.getvalue(), result.code_digest


def write_shuffled(parent: Path, files: dict[str, bytes], seed: int, mode: int) -> Path:
    """The same files, created in another order, with other mtimes and permissions."""
    root = parent / "demo"
    root.mkdir(parents=True)
    items = list(files.items())
    random.Random(seed).shuffle(items)
    old = os.umask(0o077 if seed % 2 else 0o022)
    try:
        for rel, data in items:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.chmod(path, mode)
            os.utime(path, (seed * 1000, seed * 1000))
    finally:
        os.umask(old)
    return root


def test_same_folder_packs_to_identical_bytes_whatever_order_mtime_or_mode(tmp_path: Path) -> None:
    files = module_files(changes={"pkg/a.py": "A = 1\n", "pkg/b.py": "B = 2\n", "z.csv": "1,2\n"})
    first = packed(write_shuffled(tmp_path / "one", files, seed=1, mode=0o600))
    second = packed(write_shuffled(tmp_path / "two", files, seed=2, mode=0o664))
    assert first == second


def test_archive_entries_are_sorted_and_normalized(tmp_path: Path) -> None:
    data, _ = packed(write_module(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and all(n.startswith("demo/") for n in names)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    assert {m.mode for m in members} <= {0o644, 0o755}


def test_tool_and_cache_folders_are_ignored(tmp_path: Path) -> None:
    clean = packed(write_module(tmp_path / "clean"))
    root = write_module(tmp_path / "dirty")
    for junk in (".git/config", "__pycache__/flow.cpython-311.pyc", ".venv/bin/python",
                 "env/pyvenv.cfg", "env/lib/x.py", ".deployer/bundles/demo.tar.gz",
                 "flow.pyc", ".DS_Store", ".pytest_cache/v"):
        path = root / junk
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
    assert packed(root) == clean


def test_executable_bit_is_part_of_the_code_digest(tmp_path: Path) -> None:
    root = write_module(tmp_path, files=module_files(changes={"deploy.sh": "#!/bin/sh\n"}))
    before = packed(root)[1]
    os.chmod(root / "deploy.sh", 0o755)
    assert packed(root)[1] != before


def test_env_values_change_the_config_digest_not_the_code_digest(tmp_path: Path) -> None:
    a = load_folder(write_module(tmp_path / "a"), LIMITS)
    b = load_folder(write_module(tmp_path / "b", files=module_files(
        changes={".env": "GREETING=hello\nAPI_TOKEN=another-secret\n"})), LIMITS)
    assert a.code_digest() == b.code_digest()
    assert a.config_digest(KEY) != b.config_digest(KEY)


def test_code_changes_change_the_code_digest(tmp_path: Path) -> None:
    a = load_folder(write_module(tmp_path / "a"), LIMITS)
    b = load_folder(write_module(tmp_path / "b", files=module_files(
        changes={"flow.py": module_files()["flow.py"] + b"\n# changed\n"})), LIMITS)
    assert a.code_digest() != b.code_digest()
    assert a.config_digest(KEY) == b.config_digest(KEY)


def test_config_digest_is_keyed_and_reveals_no_value() -> None:
    pairs = [("API_TOKEN", "hunter2")]
    digest = config_digest(pairs, KEY)
    assert digest != config_digest(pairs, "another-key-of-32-characters!!!!")
    assert "hunter2" not in digest and digest.startswith("hmac-sha256:")
    assert config_digest(list(reversed([("A", "1"), ("B", "2")])), KEY) == config_digest([("A", "1"), ("B", "2")], KEY)


def test_code_digest_is_the_same_for_folder_tar_and_zip(tmp_path: Path) -> None:
    root = write_module(tmp_path / "src")
    data, digest = packed(root)
    (tmp_path / "t").mkdir()
    from_tar = load_archive(io.BytesIO(data), tmp_path / "t", LIMITS, label="demo.tar.gz")
    (tmp_path / "z").mkdir()
    zipped = zip_bytes([(f"demo/{k}", v) for k, v in module_files().items()])
    from_zip = load_archive(io.BytesIO(zipped), tmp_path / "z", LIMITS, label="demo.zip")
    assert from_tar.code_digest() == from_zip.code_digest() == digest


def test_build_context_leaves_env_out(tmp_path: Path) -> None:
    module = load_folder(write_module(tmp_path), LIMITS)
    out = io.BytesIO()
    result = pack(module.tree, out, exclude={".env"})
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert ".env" not in names and "flow.py" in names
    assert result.code_digest == module.code_digest()
    assert b"s3cr3t-token-value" not in gzip.decompress(out.getvalue())
