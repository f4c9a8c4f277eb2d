"""Proving that a revision's flows load where they will run, before anything points at them.

* **A new agent** does not run ``prefect worker start`` directly: it runs ``python -c SCRIPT ARGS``
  in its own environment (the revision's venv, or its image on ACI). The script runs the
  deployments' pull steps as a flow run will (to fetch the revision's code, when code comes
  from the code store), imports every entrypoint with ``load_flow_from_entrypoint`` and no
  placeholder (a missing package fails), prints one line, ``DEPLOYER-PREFLIGHT <json>``, and
  then becomes the worker (the same process), or, when something failed, waits without a
  worker so that its log can be read. Without a worker (the check of a revision whose runs
  each get a container of their own, ``isolation: run``) it ends once it has said.
* **A code-only revision** starts no agent: the serving agent proves the new code loads in its
  environment. Its *warm checker* (``CHECKER``) is a process the agent forks before it loads any
  flow, with Prefect already imported: it watches a channel the code store gives it (a folder
  locally, a blob prefix on Azure, which the agent's identity may read), and for each request
  forks again, runs the new code's pull steps (fetch and verify), loads the entrypoints and prints
  ``DEPLOYER-CHECK <request> <json>`` to the agent's log, where the deployer reads it: under a
  second, where a flow run would first wait for the worker's next poll. An agent without a
  checker (started by an older deployer) gets one run of ``CHECK_FLOW`` (``_deployer_check.py``,
  published with the code) instead; it fails with the preflight line in its message.

* **Each flow run's memory limit** is kept by a *limiter* the agent forks first
  (``run_limits``).

The pipeline reads that line (``parse``). Neither script imports the deployer: the agent's
environment does not have it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from deployer import run_limits

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
            # the user's own frames: files under the module (not "<frozen os>" and its kin,
            # which abspath would put under the working directory)
            mine = [f for f in frames if not f.filename.startswith("<")
                    and os.path.abspath(f.filename).startswith(root + os.sep)]
            frame = (mine or frames or [None])[-1]
            where = os.path.relpath(frame.filename, root) if frame and mine else entrypoint.split(":")[0]
            results.append({"deployment": name, "ok": False, "entrypoint": entrypoint,
                            "exception": type(cause).__name__, "message": str(cause)[:500],
                            "file": where, "line": frame.lineno if frame and mine else None})
    return results
'''

CHECKER = r'''
import json, os, sys


def _requests(channel):
    """(request id, body) of the checks waiting in the channel."""
    if channel["kind"] == "folder":
        out = []
        for name in sorted(os.listdir(channel["path"])) if os.path.isdir(channel["path"]) else []:
            if name.endswith(".json"):
                try:
                    with open(os.path.join(channel["path"], name)) as handle:
                        out.append((name[:-5], json.load(handle)))
                except (OSError, ValueError):
                    pass
        return out
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient
    global _container
    if _container is None:
        _container = ContainerClient(channel["account_url"], channel["container"],
                                     credential=DefaultAzureCredential())
    out = []
    for blob in _container.list_blobs(name_starts_with=channel["prefix"]):
        if blob.name.endswith(".json"):
            data = _container.download_blob(blob.name).readall()
            out.append((blob.name.rsplit("/", 1)[-1][:-5], json.loads(data)))
    return out


_container = None


def _check(request_id, body):
    """In a child of the checker: fetch and verify the new code, load its entrypoints, say."""
    import asyncio, tempfile
    from prefect.deployments.steps.core import run_steps
    try:
        os.chdir(tempfile.mkdtemp(prefix="deployer-check."))
        asyncio.run(run_steps(body["pull"]))
        results = _load_all(body["entrypoints"], os.getcwd())
    except BaseException as exc:
        cause = exc.__cause__ or exc
        results = [{"deployment": "-", "ok": False, "entrypoint": "-", "exception": type(cause).__name__,
                    "message": str(cause)[:500], "file": None, "line": None}]
    print("DEPLOYER-CHECK " + request_id + " " + json.dumps(results), flush=True)


def _checker(channel):
    """Forked by the agent before it loads any flow: answer check requests until it exits."""
    import time
    parent, seen = os.getppid(), set()
    while os.getppid() == parent:
        try:
            waiting = _requests(channel)
        except Exception as exc:  # a storage hiccup: look again
            print("deployer checker: " + type(exc).__name__, file=sys.stderr, flush=True)
            waiting = []
        for request_id, body in waiting:
            if request_id in seen:
                continue
            seen.add(request_id)
            child = os.fork()
            if child == 0:
                try:
                    _check(request_id, body)
                finally:
                    os._exit(0)
            os.waitpid(child, 0)
        time.sleep(channel.get("poll", 1.0))
    os._exit(0)
'''

SCRIPT = _LOAD + CHECKER + run_limits.LIMITER + r'''
import runpy, time
spec = json.loads(sys.argv[1])
os.chdir(spec["workdir"])
''' + run_limits.start_limiter() + r'''
if spec.get("checks"):
    # Prefect imported once, no thread started yet, no flow of the module loaded: fork here
    import prefect.flows, prefect.deployments.steps.core  # noqa
    if os.fork() == 0:
        _checker(spec["checks"])
if spec.get("pull"):
    import asyncio
    from prefect.deployments.steps.core import run_steps
    asyncio.run(run_steps(spec["pull"]))
results = _load_all(spec["entrypoints"], os.getcwd())
print("DEPLOYER-PREFLIGHT " + json.dumps(results), flush=True)
if not spec["worker"]:  # a check alone (``isolation: run``): said, and done
    sys.stdout.flush()
    os._exit(0 if all(r["ok"] for r in results) else 1)
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
            pull: list[dict[str, Any]] | None = None,
            checks: dict[str, Any] | None = None) -> list[str]:
    """The agent's command line: the preflight (and its warm checker, watching ``checks``),
    then ``prefect <worker...>``."""
    args: dict[str, Any] = {"workdir": workdir, "entrypoints": [list(e) for e in entrypoints],
                            "worker": worker}
    if pull:
        args["pull"] = pull
    if checks:
        args["checks"] = checks
    return [python, "-c", SCRIPT, json.dumps(args, separators=(",", ":"))]


CHECK_MARKER = "DEPLOYER-CHECK "


def parse_check(log: str, request_id: str) -> list[dict[str, Any]] | None:
    """The warm checker's answer to ``request_id`` in an agent's log, or None while there is none."""
    prefix = f"{CHECK_MARKER}{request_id} "
    for line in reversed(log.splitlines()):
        at = line.find(prefix)
        if at >= 0:
            return parse(MARKER + line[at + len(prefix):])
    return None


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
