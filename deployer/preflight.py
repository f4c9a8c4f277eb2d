"""The agent proves that its revision's flows load before its worker starts.

An agent does not run ``prefect worker start`` directly: it runs ``python -c SCRIPT ARGS`` in its
own environment (the revision's venv, or its image on ACI). The script imports every
deployment's entrypoint the way a flow run will (``load_flow_from_entrypoint`` with no
placeholder: a missing package fails), prints one line, ``DEPLOYER-PREFLIGHT <json>``, with
each deployment's result, and then either becomes the worker (the same process, so nothing is
imported twice) or, when something failed, waits without a worker so that its log can be read.
The pipeline reads that line from the agent's log (``parse``). The script imports nothing of
the deployer: the agent's environment does not have it.
"""

from __future__ import annotations

import json
from typing import Any

MARKER = "DEPLOYER-PREFLIGHT "

SCRIPT = r'''
import json, os, runpy, sys, time, traceback
spec = json.loads(sys.argv[1])
root = os.path.abspath(spec["workdir"])
os.chdir(root)
sys.path.insert(0, root)
results = []
for name, entrypoint in spec["entrypoints"]:
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
print("DEPLOYER-PREFLIGHT " + json.dumps(results), flush=True)
if all(r["ok"] for r in results):
    sys.argv = ["prefect", *spec["worker"]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)
else:
    while True:
        time.sleep(3600)
'''


def command(python: str, workdir: str, entrypoints: list[tuple[str, str]],
            worker: list[str]) -> list[str]:
    """The agent's command line: the preflight, then ``prefect <worker...>``."""
    args = {"workdir": workdir, "entrypoints": [list(e) for e in entrypoints], "worker": worker}
    return [python, "-c", SCRIPT, json.dumps(args, separators=(",", ":"))]


def parse(log: str) -> list[dict[str, Any]] | None:
    """The agent's preflight results, or None while it has not printed them yet."""
    for line in log.splitlines():
        at = line.find(MARKER)
        if at < 0:
            continue
        try:
            results = json.loads(line[at + len(MARKER):])
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
