"""Benchmark: what the function app ships and how fast it starts, with its requirements.txt
(prefect-client) against the same list with the whole of Prefect (and rich), as it shipped
before, in the same run.

For each: the installed size of the venv the remote build would make (site-packages), the zip
`deployer package` writes, the import time of function_app.py (indexing: what a cold start
pays before the host can list the functions) and of a first invocation (every module the
triggers import on the azure backend, with the Prefect client). Median of 5 cold interpreters.

    python bench/function_app.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployer.packaging import write_package  # noqa: E402

RUNS = 5
INDEX = "import function_app; function_app.app.get_functions()"
FIRST = ("import function_app; function_app.app.get_functions()\n"
         "import deployer.bootstrap, deployer.pipeline.intake, deployer.rotation.dispatch, "
         "deployer.rotation.engine, deployer.webhooks, deployer.cleanup.execute\n"
         "import deployer.adapters.aci_runtime, deployer.adapters.acr_builder, "
         "deployer.adapters.azure_clients, deployer.adapters.blob_documents, "
         "deployer.adapters.storage_queue, deployer.adapters.prefect_orchestrator, "
         "deployer.adapters.prefect_deployments, deployer.adapters.apprise_notifier\n"
         "import prefect.client.orchestration")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _venv(where: Path, requirements: list[str]) -> Path:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    (where / "requirements.txt").write_text("\n".join(requirements) + "\n")
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(where / "venv")], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python",
                    str(where / "venv" / "bin" / "python"), "-r", str(where / "requirements.txt")],
                   check=True)
    return where / "venv" / "bin" / "python"


def _seconds(python: Path, app: Path, code: str) -> float:
    times = []
    for _ in range(RUNS):
        done = subprocess.run([str(python), "-c", f"import time; t=time.perf_counter()\n{code}\n"
                               "print(time.perf_counter()-t)"], cwd=app, capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app)},
                              check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    lines = [raw.split("#")[0].strip() for raw in (ROOT / "requirements.txt").read_text().splitlines()]
    now = [line for line in lines if line]
    before = [line.replace("prefect-client", "prefect") for line in now] + ["rich>=13"]
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        work = Path(tmp)
        package = write_package(ROOT, work / "app.zip")
        app = work / "app"
        with zipfile.ZipFile(work / "app.zip") as archive:
            archive.extractall(app)
        results = {}
        for name, requirements in (("before (prefect)", before), ("now (prefect-client)", now)):
            (work / name).mkdir()
            python = _venv(work / name, requirements)
            site = next((work / name / "venv" / "lib").glob("python*/site-packages"))
            results[name] = (_size(site), _seconds(python, app, INDEX), _seconds(python, app, FIRST))
        print(f"function-app: package zip {package.zip_bytes / 1024:.0f} KiB, {len(package.files)} files")
        for name, (size, index, first) in results.items():
            print(f"function-app: {name}: installed {size / 2**20:.0f} MiB, import function_app.py "
                  f"{index:.2f} s, first invocation's imports {first:.2f} s")
        (b_size, b_index, b_first), (n_size, n_index, n_first) = results.values()
        print(f"function-app: now/before: installed {n_size / b_size:.2f}x, import "
              f"{n_index / b_index:.2f}x, first invocation {n_first / b_first:.2f}x")


if __name__ == "__main__":
    main()
