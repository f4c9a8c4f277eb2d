"""The two digests of a module.

* **code digest** — SHA-256 over a canonical manifest of every bundled file except ``.env``:
  ``path``, executable bit, size and the file's own SHA-256, in path order. It names the image:
  the same code gives the same digest whatever the archive format, file order, mtimes or owner.
* **config digest** — HMAC-SHA256, keyed with ``DEPLOYER_CONFIG_DIGEST_KEY``, over the ``.env``
  keys and values. It tells whether the agent must restart without a rebuild. Being keyed, it
  cannot be used to confirm a guessed secret by anyone who reads the state.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from deployer.bundle.envfile import is_env_file

CODE_PREFIX = "sha256:"
CONFIG_PREFIX = "hmac-sha256:"


class CodeDigest:
    """Accumulates manifest lines in path order; ``value()`` when done. The digest is the SHA-256
    of ``manifest()``, which the code store keeps beside the code (``bundle.manifest``)."""

    def __init__(self) -> None:
        self._lines = [b"deployer-code-digest-v1\n"]

    def add(self, path: str, executable: bool, size: int, file_sha256: str) -> None:
        if is_env_file(path):  # secrets, the configuration: never code
            return
        mode = "x" if executable else "-"
        self._lines.append(f"{path}\0{mode}\0{size}\0{file_sha256}\n".encode())

    def manifest(self) -> bytes:
        return b"".join(self._lines)

    def value(self) -> str:
        return CODE_PREFIX + hashlib.sha256(self.manifest()).hexdigest()


def config_digest(pairs: Iterable[tuple[str, str]], key: str) -> str:
    mac = hmac.new(key.encode("utf-8"), b"deployer-config-digest-v1\n", hashlib.sha256)
    for name, value in sorted(pairs):
        mac.update(name.encode("utf-8") + b"\0" + value.encode("utf-8") + b"\n")
    return CONFIG_PREFIX + mac.hexdigest()


def short(digest: str, length: int = 12) -> str:
    """The hex part of a digest, shortened for tags, names and tables."""
    return digest.split(":", 1)[-1][:length]
