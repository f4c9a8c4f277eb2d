"""Code verified against its digest: what the code store holds is trusted only once it proves to
be the code its deployment names.

The code digest (``digest.CodeDigest``) is the SHA-256 of a manifest, one line per file (path,
executable bit, size, the file's own SHA-256). Publishing writes that manifest next to the code
(``MANIFEST``), so the code in a folder can be checked without the bundle: the manifest must hash
to the digest, every file it lists must be there with its hash, and no importable file may have
been added (a ``pandas.py`` next to the flow would shadow the real package). Byte-code caches are
never trusted: ``__pycache__`` folders are removed before anything is imported.

``verify`` is written with the standard library only and imports nothing of the deployer: a flow
run executes its own source (``verify_command``) as a pull step, in the run's environment, after
the code is fetched and before the flow is loaded. The deployer runs the same function on the
store's copy (``status``, cleanup, publish).
"""

from __future__ import annotations

import base64
import inspect
import json
import shlex

MANIFEST = ".deployer-manifest"


def verify(root: str, digest: str, extra: dict[str, str], clean: bool = False) -> list[str]:
    """What is wrong with the code in ``root`` for ``digest`` (nothing: it is that code).
    ``extra``: files the deployer wrote beside the code, with their SHA-256; ``clean``: remove
    byte-code caches first (before a run imports anything)."""
    import hashlib
    import os
    import shutil

    marker = ".deployer-manifest"
    importable = (".py", ".pyc", ".pyo", ".pyd", ".so", ".pth")
    if not os.path.isdir(root):
        return ["the code is missing from the code store"]
    try:
        with open(os.path.join(root, marker), "rb") as handle:
            manifest = handle.read()
    except OSError:
        return [f"{marker}: missing: the code is missing or incomplete"]
    if "sha256:" + hashlib.sha256(manifest).hexdigest() != digest:
        return [f"{marker}: altered: it does not hash to the code digest"]
    expected = {}
    for line in manifest.decode("utf-8").split("\n")[1:]:
        if line:
            path, _mode, length, sha = line.split("\0")
            expected[path] = (int(length), sha)
    for path, sha in extra.items():
        expected[path] = (-1, sha)
    problems = []
    seen = set()
    for folder, dirs, files in os.walk(root):
        if clean and "__pycache__" in dirs:
            shutil.rmtree(os.path.join(folder, "__pycache__"), ignore_errors=True)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            full = os.path.join(folder, name)
            path = os.path.relpath(full, root).replace(os.sep, "/")
            if path == marker or path == ".complete":
                continue
            if path not in expected:
                if name.endswith(importable):
                    problems.append(f"{path}: added: it is not part of this code")
                continue
            seen.add(path)
            size, sha = expected[path]
            with open(full, "rb") as handle:  # a flow file is at most 10 MiB (the contract)
                content = hashlib.sha256(handle.read())
            if content.hexdigest() != sha or size not in (-1, os.path.getsize(full)):
                problems.append(f"{path}: altered: its content is not the published one")
    problems += [f"{path}: missing" for path in sorted(set(expected) - seen)]
    return problems


def _main(argv: list[str]) -> int:
    """The pull step: ``verify`` the folder, or say what is wrong and exit non-zero."""
    import json
    import sys

    root, digest, label, extra = argv[0], argv[1], argv[2], json.loads(argv[3])
    problems = verify(root, digest, extra, clean=True)
    if not problems:
        print(f"deployer: code of {label} verified against {digest[:19]}", flush=True)
        return 0
    sys.stderr.write(f"deployer: refusing to run the code of {label}: the code store's copy is not "
                     f"the code its deployment names ({digest[:19]}): " + "; ".join(problems[:10])
                     + ". Re-publish it: upload the same bundle again, or `deployer deploy "
                     "--repair`.\n")
    return 3


def verify_command(root: str, digest: str, label: str, extra: dict[str, str]) -> str:
    """One line for Prefect's ``run_shell_script`` step (it runs each line without a shell):
    ``python`` (the run's own) executes ``verify`` on ``root``."""
    source = "\n".join([inspect.getsource(verify), inspect.getsource(_main),
                        "import sys", "sys.exit(_main(sys.argv[1:]))"])
    program = "import base64;exec(base64.b64decode('%s'))" % (  # noqa: UP031
        base64.b64encode(source.encode()).decode())
    return shlex.join(["python", "-c", program, root, digest, label,
                       json.dumps(extra, sort_keys=True, separators=(",", ":"))])

