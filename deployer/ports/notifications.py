"""Notifications: what the deployer tells people (``deployer.notices`` builds them from records)
and the notifier that sends them (apprise in ``adapters/apprise_notifier.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Notice:
    kind: str  # deploy.succeeded | deploy.failed | deploy.rolled_back | deploy.rejected |
    #            request.superseded | cleanup | webhook.unauthorised
    level: str  # info | success | warning | failure (apprise's notify types)
    title: str
    body: str
    module: str = ""
    #: notices with the same key are rate-limited together (storms)
    key: str = ""


@dataclass(frozen=True)
class Sent:
    ok: bool
    detail: str  # "sent to 2 target(s)", "suppressed: ...", "timed out after 5 s", an error

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class Notifier(Protocol):
    def send(self, notice: Notice) -> Sent | None:
        """What became of it; None when there is nowhere to send (nothing to record)."""
        ...


class NoNotifier:
    """No DEPLOYER_NOTIFY_URLS: nothing is sent."""

    def send(self, notice: Notice) -> Sent | None:
        return None
