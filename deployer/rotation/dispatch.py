"""The queue trigger's use case: a message becomes one step of its request, or is dropped if
malformed (retrying cannot make it readable)."""

from __future__ import annotations

import logging

from deployer.errors import ConfigError, StateCorrupt
from deployer.models import RunRecord
from deployer.request_queue import decode, peek_environment
from deployer.rotation.engine import handle_step
from deployer.services import Services

logger = logging.getLogger(__name__)


def handle_message(services: Services, body: bytes, *, message_id: str,
                   attempt: int) -> RunRecord | None:
    try:
        environment = peek_environment(body)
        try:  # the request lives in its environment's state
            services = services.in_environment(environment)
        except ConfigError as exc:  # an environment the settings no longer name
            logger.error("dispatch.unknown_environment message=%s environment=%r error=%s",
                         message_id, environment, exc.message)
            return None
        message = decode(services, body, where=f"queue message {message_id}")
    except StateCorrupt as exc:
        logger.error("dispatch.malformed message=%s error=%s", message_id, exc.message)
        return None
    return handle_step(services, message, attempt=attempt).record
