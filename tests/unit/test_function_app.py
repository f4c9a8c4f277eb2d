"""function_app.py stays thin: importing it needs no setting and touches no network."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json, socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access at import time")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    import function_app
    out = {}
    for fn in function_app.app.get_functions():
        trigger = fn.get_trigger().get_dict_repr()
        out[fn.get_function_name()] = {k: str(v) for k, v in trigger.items() if k != "direction"}
    print(json.dumps(out))
""")


def test_import_needs_no_settings_nor_network_and_registers_the_triggers() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    functions = json.loads(done.stdout.strip().splitlines()[-1])
    assert functions["bundle_uploaded"]["type"] == "blobTrigger"
    assert functions["bundle_uploaded"]["path"] == "%DEPLOYER_BUNDLES_CONTAINER%/{name}"
    assert functions["bundle_uploaded"]["source"].endswith("EVENT_GRID") or "EventGrid" in functions["bundle_uploaded"]["source"]
    assert functions["deploy_request"] == {"type": "queueTrigger", "name": "message",
                                           "queueName": "%DEPLOYER_REQUEST_QUEUE%",
                                           "connection": "AzureWebJobsStorage"}


def test_importing_the_deployer_core_does_not_import_azure_or_prefect() -> None:
    probe = ("import sys, deployer.rotation.engine, deployer.rotation.drive, deployer.rotation.dispatch, "
             "deployer.pipeline.intake, deployer.pipeline.webhook, deployer.pipeline.cleanup, deployer.bundle; "
             "bad = [m for m in sys.modules if m.startswith(('azure', 'prefect'))]; print(bad)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
