"""Notifications through apprise: one setting (``DEPLOYER_NOTIFY_URLS``) with one or more apprise
URLs (``slack://``, ``msteams://``, ``mailtos://``, ``ntfy://``, ``json://`` for a generic JSON
webhook, ...).

A notifier must never fail or slow what it reports on: each notice is sent from a thread of its
own and waited for at most ``timeout`` seconds (apprise's own connect and read timeouts are
shorter still); an error or a timeout is returned, for the caller to record, never raised.
Rate-limited in this process: at most ``per_minute`` notices a minute, and notices of one key (an
unauthorised-webhook storm) at most once per ``key_interval`` seconds, the next one saying how many
were held back. The URLs hold tokens: they appear in no log line and no error.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from deployer.ports.notifications import Notice, Sent

logger = logging.getLogger(__name__)


class AppriseNotifier:
    def __init__(self, urls: str, *, timeout: float = 5.0, per_minute: int = 10,
                 key_interval: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._urls = [u for u in urls.replace(",", " ").split() if u]
        self._timeout = timeout
        self._per_minute = per_minute
        self._key_interval = key_interval
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._last_by_key: dict[str, float] = {}
        self._held: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def send(self, notice: Notice) -> Sent:
        held = self._admit(notice)
        if isinstance(held, Sent):
            logger.info("notify.suppressed kind=%s module=%s %s", notice.kind, notice.module, held.detail)
            return held
        body = notice.body + (f"\n({held} similar notice(s) held back since the last one)" if held else "")
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=self._deliver, args=(notice, body, outcome),
                                  name="deployer-notify", daemon=True)
        thread.start()
        thread.join(self._timeout)
        if thread.is_alive():
            result = Sent(False, f"timed out after {self._timeout:g} s")
        elif "error" in outcome:
            result = Sent(False, outcome["error"])
        elif not outcome.get("ok"):
            result = Sent(False, f"no target accepted it ({len(self._urls)} configured)")
        else:
            result = Sent(True, f"sent to {len(self._urls)} target(s)")
        log = logger.info if result.ok else logger.warning
        log("notify.%s kind=%s module=%s %s", "sent" if result.ok else "failed", notice.kind,
            notice.module, result.detail)
        return result

    def _admit(self, notice: Notice) -> Sent | int:
        """How many notices of its key were held back before it (it goes), or why it does not."""
        now = self._clock()
        with self._lock:
            while self._sent and now - self._sent[0] > 60:
                self._sent.popleft()
            if notice.key:
                last = self._last_by_key.get(notice.key)
                if last is not None and now - last < self._key_interval:
                    self._held[notice.key] += 1
                    return Sent(False, f"suppressed: one {notice.kind} notice per "
                                f"{self._key_interval:g} s")
            if len(self._sent) >= self._per_minute:
                return Sent(False, f"suppressed: more than {self._per_minute} notices in a minute")
            self._sent.append(now)
            if notice.key:
                self._last_by_key[notice.key] = now
            return self._held.pop(notice.key, 0) if notice.key else 0

    def _deliver(self, notice: Notice, body: str, outcome: dict[str, Any]) -> None:
        try:
            import apprise

            bundle = apprise.Apprise()
            added = sum(1 for url in self._urls if bundle.add(url))
            if added < len(self._urls):
                outcome["error"] = (f"{len(self._urls) - added} of {len(self._urls)} URL(s) in "
                                    "DEPLOYER_NOTIFY_URLS are not apprise URLs apprise can use")
                if not added:
                    return
            kind = {"success": apprise.NotifyType.SUCCESS, "warning": apprise.NotifyType.WARNING,
                    "failure": apprise.NotifyType.FAILURE}.get(notice.level, apprise.NotifyType.INFO)
            outcome["ok"] = bool(bundle.notify(title=notice.title, body=body, notify_type=kind))
            if outcome["ok"]:
                outcome.pop("error", None)  # the usable targets took it
        except Exception as exc:  # never raised to the deploy: reported as its outcome
            outcome["error"] = f"{type(exc).__name__} while sending"
