"""The registry's way in, and the way out of a bad deploy, on this machine: a recorded ACR push
posted to `deployer dev`'s webhook route redeploys a known image; `deployer rollback` goes back;
`deployer history` tells the story."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deployer.models import RequestKind, RunStatus, StageStatus
from deployer.pipeline.webhook import image_tag
from tests.e2e.harness import Stack

pytestmark = pytest.mark.timeout(900)
TOKEN = "e2e-webhook-shared-secret"
PAYLOAD = Path(__file__).resolve().parents[1] / "data" / "webhooks" / "acr_push.json"


def post(stack: Stack, body: bytes, token: str | None = TOKEN) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Deployer-Webhook-Token"] = token
    request = urllib.request.Request(f"http://127.0.0.1:{stack.http_port}/api/acr-webhook", data=body,
                                     headers=headers, method="POST")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)  # the host is still starting



def test_push_webhook_redeploys_then_rollback_goes_back(stack: Stack) -> None:
    stack.extra["DEPLOYER_WEBHOOK_TOKEN"] = TOKEN
    stack.start_host()
    first = stack.deploy()
    assert first.status is RunStatus.SUCCEEDED
    second = stack.deploy({"requirements.txt": "prefect>=3.4,<4\n# revision two\n"})  # a new image
    assert second.status is RunStatus.SUCCEEDED
    agent_before = stack.current_agent()

    payload = json.loads(PAYLOAD.read_text())
    payload["target"].update({"repository": f"prefect-flows/{stack.name}",
                              "tag": image_tag(stack.services.state.history(stack.name)[0].revision.image), "digest": "sha256:" + "5e" * 32})
    # pushed now (the recorded payload's time is older than the uploads: it would be superseded)
    payload["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = json.dumps(payload).encode()
    assert post(stack, body, token=None)[0] == 401
    assert post(stack, body, token="guess")[0] == 401
    status, reply = post(stack, body)
    assert status == 202, reply
    [accepted] = reply["accepted"]
    record = stack.wait_record(accepted["request_id"])
    assert record.status is RunStatus.SUCCEEDED and record.kind is RequestKind.REDEPLOY, record.error
    assert record.stage("reuse-image").status is StageStatus.SKIPPED  # type: ignore[union-attr]
    assert stack.current_agent() != agent_before and stack.running_agents() == [stack.current_agent()]
    current = stack.services.state.module(stack.name).value.current  # type: ignore[union-attr]
    assert current.id == first.revision.id  # the pushed image is the first revision's build
    status, reply = post(stack, body)  # a replay
    assert status == 200 and "already" in reply["ignored"][0]["reason"]

    rolled = stack.cli("rollback", stack.name, "--json")
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["revision"]["code_digest"] == second.revision.code_digest
    assert stack.services.state.module(stack.name).value.current.id == second.revision.id  # type: ignore[union-attr]

    history = json.loads(stack.cli("history", stack.name, "--json").stdout)
    kinds = [(e["kind"], e["trigger"]["source"], e["outcome"]) for e in history["entries"]]
    assert kinds == [("deploy", "blob", "succeeded"), ("deploy", "blob", "succeeded"),
                     ("redeploy", "webhook", "succeeded"), ("rollback", "cli", "succeeded")]
    assert history["current_request"] == history["entries"][-1]["request_id"]
