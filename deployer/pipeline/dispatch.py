"""The queue trigger's use case: a message becomes a pipeline run, or is dropped if malformed."""

from __future__ import annotations

import logging

from deployer import codec
from deployer.bootstrap import Services
from deployer.errors import StateCorrupt
from deployer.models import Request, RunRecord
from deployer.pipeline.deploy import run_request

logger = logging.getLogger(__name__)


def handle_message(services: Services, body: bytes, *, message_id: str,
                   attempt: int) -> RunRecord | None:
    try:
        request = codec.loads(Request, body, where=f"queue message {message_id}")
    except StateCorrupt as exc:
        # retrying cannot make it readable: log it (without its body) and let it go
        logger.error("dispatch.malformed message=%s error=%s", message_id, exc.message)
        return None
    return run_request(services, request, attempt=attempt)
