"""What ships: the function app's package, built as the publishing tools build it (.funcignore
honoured), holds no virtualenv, node_modules, tests, local settings or .env, stays small, and
runs on its own requirements.txt (prefect-client, not the whole of Prefect)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from deployer.packaging import forbidden, package_files, write_package

ROOT = Path(__file__).resolve().parents[2]
#: the zip's bound: the app is ~110 files of Python and JSON; anything near this means something
#: that should not ship does
MAX_ZIP_BYTES = 512 * 1024


def _checkout(tmp_path: Path) -> Path:
    """A clone of the repository as a developer's machine has it after `make demo`/`make test`."""
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    root = tmp_path / "checkout"
    for rel in filter(None, tracked.decode().split("\0")):
        if (ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, root / rel)
    for rel, data in {".venv/lib/python3.11/site-packages/prefect/__init__.py": "",
                      ".venv/pyvenv.cfg": "home = /usr\n", "node_modules/azurite/package.json": "{}",
                      ".demo/finance/state.json": "{}", ".deployer/venvs/x/bin/python": "",
                      "flows/finance/.env": "API_TOKEN=s3cr3t\n", "local.settings.json": "{}",
                      "deployer/__pycache__/config.cpython-311.pyc": "", "test-artifacts/x.png": "",
                      ".git/HEAD": "ref: refs/heads/main\n", "deployer/.env": "LEAK=1\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(data)
    return root


def test_the_package_of_a_set_up_checkout_holds_only_the_app(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    package = write_package(root, tmp_path / "app.zip")
    assert forbidden(package) == []
    tops = {rel.split("/")[0] for rel in package.files}
    assert tops == {"function_app.py", "host.json", "requirements.txt", "deployer"}
    assert package.zip_bytes < MAX_ZIP_BYTES, package.zip_bytes
    with zipfile.ZipFile(tmp_path / "app.zip") as archive:
        names = archive.namelist()
        assert names == sorted(package.files)
        assert not any(b"s3cr3t" in archive.read(n) for n in names)


def test_a_funcignore_that_lets_tests_and_secrets_through_is_caught(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    kept = [line for line in (root / ".funcignore").read_text().splitlines()
            if line.strip() not in ("tests/", ".env", "*.env", "local.settings.json")]
    (root / ".funcignore").write_text("\n".join(kept) + "\n")
    found = forbidden(package_files(root))
    assert any(f.startswith("tests/") and "inside tests/" in f for f in found)
    assert "local.settings.json: local settings or secrets" in found
    assert "deployer/.env: local settings or secrets" in found


def test_deployer_package_cli_writes_the_zip_and_refuses_a_leaky_one(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    deployer = [sys.executable, "-m", "deployer"]
    done = subprocess.run([*deployer, "package", "--root", str(root), "-f", str(tmp_path / "a.zip"),
                           "--json"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["zip_bytes"] == (tmp_path / "a.zip").stat().st_size and report["file_count"] > 50
    (root / ".funcignore").unlink()
    done = subprocess.run([*deployer, "package", "--root", str(root), "--list"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1
    assert "would ship what it must not" in done.stderr and ".venv/" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout


#: what the app's triggers import on Azure, and the Prefect parts they use, in a venv that has
#: only requirements.txt (as the remote build makes it): no module may need the Prefect server
PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys, time
    start = time.perf_counter()
    import function_app
    names = sorted(f.get_function_name() for f in function_app.app.get_functions())
    imported = time.perf_counter() - start
    import deployer
    skip = ("deployer.cli", "deployer.devhost", "deployer.demo", "deployer.devstack",
            "deployer.adapters.local_", "deployer.__main__")
    for info in pkgutil.walk_packages(deployer.__path__, "deployer."):
        if not info.name.startswith(skip):
            importlib.import_module(info.name)
    from deployer.adapters.prefect_deployments import _refusal
    never, daily = _refusal({"cron": "0 0 30 2 *"}), _refusal({"rrule": "FREQ=DAILY"})
    import importlib.metadata as md
    have = {d.metadata["Name"].lower() for d in md.distributions()}
    print(json.dumps({"functions": names, "import_seconds": imported, "never": never, "daily": daily,
                      "prefect": "prefect" in have, "prefect_client": "prefect-client" in have}))
""")


#: venvs of the app's requirements.txt alone, kept between runs by the requirements' digest
VENVS = ROOT / ".pytest_cache" / "app-venvs"


def app_venv(uv: str, requirements: Path) -> Path:
    """A venv of exactly ``requirements`` (what the remote build installs), built once per
    content and Python: later runs reuse it. Built aside and renamed, so it is never half-made."""
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = VENVS / digest
    if (venv / "bin" / "python").exists():
        return venv
    VENVS.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=VENVS))
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(partial)], check=True, timeout=120)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(partial / "bin" / "python"), "-r",
                    str(requirements)], check=True, timeout=800)
    try:
        partial.rename(venv)
    except OSError:  # another test process made it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return venv


@pytest.mark.timeout(900)
def test_the_app_runs_on_its_own_requirements_with_prefect_client_only(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (make setup installs it)")
    app = tmp_path / "app"
    write_package(ROOT, tmp_path / "app.zip")
    with zipfile.ZipFile(tmp_path / "app.zip") as archive:
        archive.extractall(app)
    venv = app_venv(uv, app / "requirements.txt")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], cwd=app, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["functions"] == ["acr_webhook", "bundle_uploaded", "dashboard", "deploy_request",
                                   "nightly_cleanup", "per_run_dispatch", "status"]
    assert report["prefect_client"] and not report["prefect"]
    # validation's schedule check runs on the client's models alone
    assert report["never"].startswith("never produces a run") and report["daily"] == ""
