"""The local build process: ``python -m deployer.adapters.local_build <image folder>``.

It runs in a session of its own (a host killed mid-build leaves it going, as an ACR run would),
reads ``build.json`` in the image folder, and ends with ``image.json`` (success) or a failed
``build.json`` with uv's log tail.

Virtualenvs are kept apart from images, one per *dependency digest* (``requirements.txt`` and
the Python it is built for) under the venv store (``DEPLOYER_VENV_DIR``): an image links its
``venv`` to the store's, so a module whose dependencies did not change, or a second module with
the same requirements, never installs them again. A ``requirements.txt`` that refers to files
(``-r``, ``-c``, ``-e``, local paths) cannot be judged by its text alone: its venv is then keyed
by the module's code digest too, i.e. never shared.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from deployer.adapters.system_clock import SYSTEM_CLOCK
from deployer.errors import BuildFailed

#: a cold install of prefect and its dependencies takes ~30 s without a cache; give slow mirrors room
INSTALL_TIMEOUT_SECONDS = 900
LOG_TAIL_LINES = 40
_FILE_REFERENCE = re.compile(r"^\s*(-r|-c|-e|--requirement|--constraint|--editable|\.|/|file:)",
                             re.IGNORECASE)


def uv_binary() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            raise BuildFailed("uv is not installed; the local backend builds images with it",
                              hint="pip install uv (make does it)") from None
        return found
    return str(find_uv_bin())


def dependency_digest(requirements: bytes, python: str, code_digest: str) -> str:
    """What a venv is built from: the requirements' text and the Python (plus the code, when
    the requirements refer to files)."""
    text = requirements.decode("utf-8", "replace")
    refers = any(_FILE_REFERENCE.match(line) for line in text.splitlines())
    parts = [python, text] + ([code_digest] if refers else [])
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def run_build(folder: Path) -> int:
    record = read(folder / "build.json")
    store = Path(record["venvs"])
    try:
        venv = _venv(store, record["dependencies"], str(record["python"]),
                     folder / "code" / "requirements.txt")
    except BuildFailed as exc:
        write(folder / "build.json", {**read(folder / "build.json"), "state": "failed",
                                      "error": exc.message, "log_tail": exc.log_tail})
        return 1
    link = folder / "venv"
    link.unlink(missing_ok=True)
    link.symlink_to(venv, target_is_directory=True)
    (folder / "image.json").write_text(json.dumps({
        "module": record["module"], "code_digest": record["code_digest"],
        "dependencies": record["dependencies"], "venv": str(venv),
        "built_at": SYSTEM_CLOCK.now().isoformat(), "python": record["python"]}, indent=2))
    write(folder / "build.json", {**read(folder / "build.json"), "state": "succeeded"})
    return 0


def _venv(store: Path, dependencies: str, python: str, requirements: Path) -> Path:
    """The store's venv for these dependencies, built now if it is not there yet (one builder
    at a time per digest: a second waits for the first and reuses its venv)."""
    store.mkdir(parents=True, exist_ok=True)
    target = store / dependencies.split(":", 1)[1][:16]
    with open(store / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "venv.json").is_file():
            print(f"reusing {target} (dependencies {dependencies[:19]})", flush=True)
            return target
        shutil.rmtree(target, ignore_errors=True)  # what an interrupted builder left
        try:
            uv = uv_binary()
            _run([uv, "venv", "--quiet", "--python", python, str(target)], "create the virtualenv")
            _run([uv, "pip", "install", "--compile-bytecode", "--python",
                  str(target / "bin" / "python"), "-r", str(requirements)],
                 "install requirements.txt", cwd=requirements.parent)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        (target / "venv.json").write_text(json.dumps({"dependencies": dependencies,
                                                      "python": python}, indent=2))
        return target


def prune(store: Path, in_use: set[Path]) -> None:
    """Delete the store's venvs that no image links to any more."""
    if not store.is_dir():
        return
    for venv in store.iterdir():
        if not venv.is_dir() or venv.resolve() in in_use:
            continue
        with open(store / f"{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            shutil.rmtree(venv, ignore_errors=True)
        (store / f"{venv.name}.lock").unlink(missing_ok=True)


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_SECONDS, env=uv_env())
    except subprocess.TimeoutExpired as exc:
        raise BuildFailed(f"{what} took longer than {INSTALL_TIMEOUT_SECONDS}s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise BuildFailed(f"could not {what} (uv exited {done.returncode})",
                          log_tail="\n".join(output[-LOG_TAIL_LINES:]))


def uv_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "UV_CACHE_DIR", "UV_INDEX_URL",
            "UV_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["UV_NO_PROGRESS"] = "1"
    return env


def read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(run_build(Path(sys.argv[1])))
