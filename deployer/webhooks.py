"""Registry push notifications, parsed (pure, no I/O). Three envelopes carry the same event:

* an ACR webhook: one JSON object ``{"id", "timestamp", "action": "push"|"ping"|..., "target"}``;
* Event Grid (Event Grid schema): a JSON array of events, ``eventType``
  ``Microsoft.ContainerRegistry.ImagePushed`` with the ACR event as ``data``, or the
  ``Microsoft.EventGrid.SubscriptionValidationEvent`` handshake;
* Event Grid (CloudEvents 1.0): one event or an array, ``type`` instead of ``eventType``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deployer.errors import DeployerError

IMAGE_PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
MAX_BODY_BYTES = 1024 * 1024
#: registry events nest four levels; anything far deeper is hostile (json's parser recurses)
MAX_DEPTH = 32


class WebhookInvalid(DeployerError):
    code = "webhook_invalid"


@dataclass(frozen=True)
class Push:
    event_id: str
    repository: str
    tag: str
    digest: str
    source: str  # acr-webhook | eventgrid
    at: datetime | None = None  # when the registry saw the push (its event timestamp)


@dataclass(frozen=True)
class Ping:
    event_id: str


@dataclass(frozen=True)
class Validation:
    code: str


@dataclass(frozen=True)
class Other:
    event_id: str
    what: str  # the action or event type we do not act on


Event = Push | Ping | Validation | Other


def parse(body: bytes) -> list[Event]:
    if len(body) > MAX_BODY_BYTES:
        raise WebhookInvalid(f"body is larger than {MAX_BODY_BYTES} bytes")
    if _depth(body) > MAX_DEPTH:
        raise WebhookInvalid(f"body nests more than {MAX_DEPTH} levels deep")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookInvalid(f"body is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise WebhookInvalid(f"body nests more than {MAX_DEPTH} levels deep") from exc
    items = doc if isinstance(doc, list) else [doc]
    if not items or not all(isinstance(i, dict) for i in items):
        raise WebhookInvalid("body must be an event object or an array of event objects")
    return [_event(item) for item in items]


def _depth(body: bytes) -> int:
    """How deeply brackets nest, counted before parsing (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _event(item: dict[str, Any]) -> Event:
    kind = item.get("eventType") or item.get("type")
    if kind == VALIDATION:
        code = (item.get("data") or {}).get("validationCode")
        if not isinstance(code, str) or not code:
            raise WebhookInvalid("subscription validation event without a validationCode")
        return Validation(code)
    if kind is not None:  # an Event Grid envelope
        data = item.get("data")
        if kind != IMAGE_PUSHED:
            return Other(str(item.get("id", "")), str(kind))
        if not isinstance(data, dict):
            raise WebhookInvalid(f"{IMAGE_PUSHED} event without data")
        return _acr(data, "eventgrid", item.get("eventTime") or item.get("time"))
    return _acr(item, "acr-webhook")


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def timestamp(value: object) -> datetime | None:
    """An RFC 3339 time as the registry writes it (nanoseconds, ``Z``); None if it is not one."""
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    try:
        return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}").astimezone(UTC)
    except ValueError:
        return None


def _acr(data: dict[str, Any], source: str, envelope_time: object = None) -> Event:
    action = data.get("action")
    event_id = str(data.get("id") or "")
    if not isinstance(action, str):
        raise WebhookInvalid("event has no 'action'")
    if action == "ping":
        return Ping(event_id)
    if action != "push":
        return Other(event_id, action)
    target = data.get("target")
    if not isinstance(target, dict):
        raise WebhookInvalid("push event has no 'target'")
    repository, digest = target.get("repository"), target.get("digest")
    if not isinstance(repository, str) or not repository:
        raise WebhookInvalid("push event has no target.repository")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise WebhookInvalid("push event has no sha256 target.digest")
    tag = target.get("tag") if isinstance(target.get("tag"), str) else ""
    at = timestamp(data.get("timestamp")) or timestamp(envelope_time)
    return Push(event_id or digest, repository, tag or "", digest, source, at)
