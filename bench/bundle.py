"""Benchmark: validate + pack + digest a 200 MiB module of about 2,000 files.

Baseline, measured in the same run on the same folder: ``tar -cz -C parent module | sha256sum``.
Prints MB/s of both, their ratio (target: at least 0.7x), and the deployer's peak RSS (target:
under 100 MiB), measured in a child process so that the generator's memory does not count.
Printed, never asserted: these machines are shared and noisy.

    python bench/bundle.py [--mib 200] [--files 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, resource, sys, time
from pathlib import Path
from deployer.bundle import BundleLimits, load_folder, pack, config_digest
start = time.perf_counter()
module = load_folder(Path(sys.argv[1]), BundleLimits(max_bytes=1 << 40, max_entries=1 << 20))
with open(os.devnull, "wb") as sink:
    packed = pack(module.tree, sink, prefix=module.name)
config = module.config_digest("bench-key-0123456789abcdef")
elapsed = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, rss_kib, packed.archive_bytes, packed.code_digest)
"""


def generate(root: Path, total_mib: int, files: int, seed: int = 7) -> int:
    """A module of mixed content: CSV-like data (compressible) and binary blobs (not)."""
    rng = random.Random(seed)
    (root / "data").mkdir(parents=True)
    (root / "requirements.txt").write_text("prefect>=3.4,<4\n")
    (root / "Dockerfile").write_text("FROM prefecthq/prefect:3-python3.11\n"
                                     f"COPY . /opt/prefect/flows/{root.name}/\n")
    (root / ".dockerignore").write_text(".env\n")
    (root / ".env").write_text("TOKEN=bench\n")
    (root / "flow.py").write_text("from prefect import flow\n\n@flow\ndef main():\n    pass\n")
    (root / "prefect.yaml").write_text("deployments:\n  - name: main\n    entrypoint: flow.py:main\n")
    per_file = total_mib * 1024 * 1024 // files
    written = 0
    for n in range(files):
        sub = root / "data" / f"part{n % 40:02d}"
        sub.mkdir(exist_ok=True)
        if n % 4 == 0:
            payload = os.urandom(per_file)
        else:
            rows = []
            size = 0
            while size < per_file:
                row = (f"{rng.randint(20200101, 20261231)},{rng.choice(['AAPL','MSFT','NVDA','ASML'])},"
                       f"{rng.random() * 1000:.4f},{rng.randint(1, 10_000)}\n")
                rows.append(row)
                size += len(row)
            payload = "".join(rows).encode()[:per_file]
        (sub / f"{n:05d}.csv").write_bytes(payload)
        written += len(payload)
    return written


def tar_baseline(root: Path) -> float:
    start = time.perf_counter()
    tar = subprocess.Popen(["tar", "-cz", "-C", str(root.parent), root.name], stdout=subprocess.PIPE)
    sha = subprocess.run(["sha256sum"], stdin=tar.stdout, capture_output=True, check=True)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0:
        raise RuntimeError("tar failed")
    assert sha.stdout
    return time.perf_counter() - start


def deployer_run(root: Path) -> tuple[float, int, int]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(root)], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:  # say why, not only that it failed
        raise SystemExit(f"bundle: the deployer's run failed:\n{done.stderr[-2000:]}")
    elapsed, rss_kib, archive_bytes, _digest = done.stdout.split()
    return float(elapsed), int(rss_kib), int(archive_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="best of N for each side")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    try:
        root = work / "benchmod"
        size = generate(root, args.mib, args.files)
        mb = size / 1e6
        tar_s = min(tar_baseline(root) for _ in range(args.rounds))
        runs = [deployer_run(root) for _ in range(args.rounds)]
        ours_s = min(r[0] for r in runs)
        rss_mib = max(r[1] for r in runs) / 1024
        print(f"bundle: {mb:.0f} MB in {args.files} files")
        print(f"bundle: tar -cz | sha256sum   {mb / tar_s:7.1f} MB/s  ({tar_s:.2f} s)")
        print(f"bundle: deployer validate+pack+digest {mb / ours_s:7.1f} MB/s  ({ours_s:.2f} s)")
        print(f"bundle: throughput ratio {tar_s / ours_s:.2f}x of tar (target >= 0.70x)")
        print(f"bundle: peak RSS {rss_mib:.1f} MiB (target < 100 MiB); "
              f"archive {runs[0][2] / 1e6:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
