"""Proving that a revision's flows load where they will run, before anything points at them.

* **A new agent** does not run ``prefect worker start`` directly: it runs ``python -c SCRIPT ARGS``
  in its own environment (the revision's venv, or its image on ACI). The script runs the
  deployments' pull steps as a flow run will (to fetch the revision's code, when code comes
  from the code store), imports every entrypoint with ``load_flow_from_entrypoint`` and no
  placeholder (a missing package fails), prints one line, ``DEPLOYER-PREFLIGHT <json>``, and
  then becomes the worker (the same process), or, when something failed, waits without a
  worker so that its log can be read.
* **A code-only revision** starts no agent: the published code carries ``_deployer_check.py``
  (``CHECK_FLOW``), a flow that loads the same entrypoints; one run of it on the serving agent,
  with the new code's pull steps, is the proof. It fails with the same line in its message.

The pipeline reads that line (``parse``). Neither script imports the deployer: the agent's
environment does not have it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MARKER = "DEPLOYER-PREFLIGHT "
CHECK_FILE = "_deployer_check.py"
CHECK_FLOW_NAME = "deployer-check"

_LOAD = r'''
import json, os, sys, traceback


def _load_all(entrypoints, root):
    root = os.path.abspath(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    results = []
    for name, entrypoint in entrypoints:
        try:
            from prefect.flows import load_flow_from_entrypoint
            load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
            results.append({"deployment": name, "ok": True})
        except BaseException as exc:
            cause = getattr(exc, "user_exc", None) or exc
            frames = traceback.extract_tb(cause.__traceback__)
            mine = [f for f in frames if os.path.abspath(f.filename).startswith(root + os.sep)]
            frame = (mine or frames or [None])[-1]
            where = os.path.relpath(frame.filename, root) if frame and mine else entrypoint.split(":")[0]
            results.append({"deployment": name, "ok": False, "entrypoint": entrypoint,
                            "exception": type(cause).__name__, "message": str(cause)[:500],
                            "file": where, "line": frame.lineno if frame and mine else None})
    return results
'''

SCRIPT = _LOAD + r'''
import runpy, time
spec = json.loads(sys.argv[1])
os.chdir(spec["workdir"])
if spec.get("pull"):
    import asyncio
    from prefect.deployments.steps.core import run_steps
    asyncio.run(run_steps(spec["pull"]))
results = _load_all(spec["entrypoints"], os.getcwd())
print("DEPLOYER-PREFLIGHT " + json.dumps(results), flush=True)
if all(r["ok"] for r in results):
    os.chdir(spec["workdir"])
    sys.argv = ["prefect", *spec["worker"]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)
else:
    while True:
        time.sleep(3600)
'''

CHECK_FLOW = '"""Written by the deployer next to a revision\'s code: proves its flows load."""\n' + \
    _LOAD + r'''

from prefect import flow


@flow(name="deployer-check")
def check(entrypoints: list) -> int:
    results = _load_all(entrypoints, os.getcwd())
    if not all(r["ok"] for r in results):
        raise RuntimeError("DEPLOYER-PREFLIGHT " + json.dumps(results))
    return len(results)
'''
#: what the code store checks ``CHECK_FILE`` against (it is not part of the module's code)
CHECK_SHA256 = hashlib.sha256(CHECK_FLOW.encode()).hexdigest()


def command(python: str, workdir: str, entrypoints: list[tuple[str, str]], worker: list[str],
            pull: list[dict[str, Any]] | None = None) -> list[str]:
    """The agent's command line: the preflight, then ``prefect <worker...>``."""
    args: dict[str, Any] = {"workdir": workdir, "entrypoints": [list(e) for e in entrypoints],
                            "worker": worker}
    if pull:
        args["pull"] = pull
    return [python, "-c", SCRIPT, json.dumps(args, separators=(",", ":"))]


def parse(log: str) -> list[dict[str, Any]] | None:
    """The preflight results in a log or a run's state message, or None while there are none."""
    for line in log.splitlines():
        at = line.find(MARKER)
        if at < 0:
            continue
        decoder = json.JSONDecoder()
        try:
            results, _ = decoder.raw_decode(line[at + len(MARKER):])
        except ValueError:
            continue
        if isinstance(results, list) and all(isinstance(r, dict) for r in results):
            return results
    return None


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value replaced (user code may print what it read)."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
