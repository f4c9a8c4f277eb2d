"""Local image builder: a revision image is a folder with the module's code and a uv virtualenv.

    <home>/images/<module>/<code 12>/
        code/        the module's files, without .env
        venv/        uv venv + `uv pip install --compile-bytecode -r code/requirements.txt`
        image.json   written last: an image without it is an interrupted build, rebuilt

An image is built once per code digest and reused by every later agent of that code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployer.bundle import BundleLimits
from deployer.bundle.digest import short
from deployer.bundle.envfile import ENV_FILE
from deployer.bundle.tree import scan
from deployer.errors import BuildFailed
from deployer.models import utcnow
from deployer.ports import Image, ManifestInfo

logger = logging.getLogger(__name__)
#: a cold install of prefect and its dependencies takes ~30 s without a cache; give slow mirrors room
INSTALL_TIMEOUT_SECONDS = 900
LOG_TAIL_LINES = 40


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


class LocalImageBuilder:
    def __init__(self, home: Path, python: str = sys.executable) -> None:
        self._root = home / "images"
        self._python = python

    def _dir(self, module: str, code_digest: str) -> Path:
        return self._root / module / short(code_digest)

    def find(self, module: str, code_digest: str) -> Image | None:
        folder = self._dir(module, code_digest)
        marker = folder / "image.json"
        if not marker.is_file():
            return None
        try:
            meta = json.loads(marker.read_text())
        except ValueError:
            return None
        if meta.get("code_digest") != code_digest:
            return None
        return self._image(folder)

    def resolve(self, module: str, reference: str) -> Image | None:
        """A recorded image path, or ``<repository>:<tag>`` whose tag is a local image's."""
        if reference.startswith("/"):
            folder = Path(reference)
        else:
            tag = reference.split("@", 1)[0].rpartition(":")[2]
            if not tag or "/" in tag:
                return None
            folder = self._root / module / tag
        if not (folder / "image.json").is_file() or folder.parent.name != module:
            return None
        return self._image(folder)

    def image_modules(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir())

    def manifests(self, module: str) -> list[ManifestInfo]:
        """Each local image is its own 'manifest', tagged with its code digest."""
        out = []
        folder = self._root / module
        for image in sorted(folder.iterdir()) if folder.is_dir() else []:
            marker = image / "image.json"
            try:
                built = datetime.fromisoformat(json.loads(marker.read_text())["built_at"])
            except (OSError, ValueError, KeyError):
                built = datetime.fromtimestamp(image.stat().st_mtime, UTC)  # an interrupted build
            out.append(ManifestInfo(module, f"local:{image.name}", (image.name,), built))
        return out

    def delete_tag(self, module: str, tag: str) -> None:
        shutil.rmtree(self._root / module / tag, ignore_errors=True)

    def delete_manifest(self, module: str, digest: str) -> None:
        self.delete_tag(module, digest.removeprefix("local:"))

    def _image(self, folder: Path) -> Image:
        return Image(ref=str(folder), working_dir=str(folder / "code"))

    def build(self, module: str, code_digest: str, source: Path, *, resume: dict[str, Any],
              checkpoint: Callable[[dict[str, Any]], None]) -> Image:
        folder = self._dir(module, code_digest)
        if folder.exists():  # an interrupted build: start it again from scratch
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        try:
            self._copy_code(source, folder / "code")
            uv = uv_binary()
            self._run([uv, "venv", "--quiet", "--python", self._python, str(folder / "venv")],
                      module, "create the virtualenv")
            self._run([uv, "pip", "install", "--compile-bytecode", "--python",
                       str(folder / "venv" / "bin" / "python"), "-r",
                       str(folder / "code" / "requirements.txt")], module,
                      "install requirements.txt", cwd=folder / "code")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        (folder / "image.json").write_text(json.dumps({
            "module": module, "code_digest": code_digest, "built_at": utcnow().isoformat(),
            "python": self._python}, indent=2))
        logger.info("image.built module=%s code=%s", module, short(code_digest))
        return self._image(folder)

    def _copy_code(self, source: Path, target: Path) -> None:
        # the folder is an extracted bundle that passed validation under the real limits
        tree = scan(source, BundleLimits(max_bytes=1 << 40, max_entries=1 << 20))
        for entry in tree.files:
            if entry.path == ENV_FILE:
                continue
            dest = target / entry.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / entry.path, dest)
            dest.chmod(0o755 if entry.executable else 0o644)

    def _run(self, argv: list[str], module: str, what: str, cwd: Path | None = None) -> None:
        try:
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT_SECONDS, env=_uv_env())
        except subprocess.TimeoutExpired as exc:
            raise BuildFailed(f"building module {module}: {what} took longer than "
                              f"{INSTALL_TIMEOUT_SECONDS}s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            raise BuildFailed(f"building module {module}: could not {what} (uv exited "
                              f"{done.returncode})", log_tail="\n".join(output[-LOG_TAIL_LINES:]),
                              hint="fix requirements.txt (the log tail shows what uv said) and "
                              "upload again; the running agent is untouched")


def _uv_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "UV_CACHE_DIR", "UV_INDEX_URL",
            "UV_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["UV_NO_PROGRESS"] = "1"
    return env
