"""``deployer dev``: host ``function_app.py`` on this machine, without the Functions host.

It imports the app, enumerates its registered functions (``app.get_functions()``) and dispatches
to them as the host would, calling the very functions Azure calls:

* blob triggers: scan the container; each (name, etag) once, remembered in blob receipts like the
  host's; a failing blob is retried, then reported on ``webjobs-blobtrigger-poison`` after 5 tries;
  SDK-type parameters (``BlobClient``) are built by the binding extension's own converter.
* queue triggers: dequeue with a visibility lease that is renewed while the function runs; a
  failure makes the message visible again after ``visibilityTimeout`` (host.json); after
  ``maxDequeueCount`` attempts it moves to ``<queue>-poison``; up to ``batchSize`` at once.
* timer triggers: six-field NCRONTAB schedules, ``%SETTING%`` resolved, ``runOnStartup`` honoured.
* HTTP triggers: routes under ``/api/`` on 127.0.0.1. Like Core Tools, keys are not enforced.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func

from deployer.devhost.http import HttpFrontEnd
from deployer.devhost.triggers import BlobWatcher, QueueWatcher, TimerWatcher

logger = logging.getLogger("deployer.devhost")


@dataclass(frozen=True)
class HostOptions:
    poll_seconds: float = 1.0
    lease_seconds: int = 30  # queue messages stay invisible this long, renewed while running
    max_dequeue_count: int = 5
    retry_delay_seconds: int = 30  # host.json queues.visibilityTimeout
    batch_size: int = 4
    http_port: int | None = None  # None: no HTTP front end

    @classmethod
    def from_host_json(cls, path: Path, **overrides: Any) -> HostOptions:
        queues: dict[str, Any] = {}
        if path.is_file():
            queues = json.loads(path.read_text()).get("extensions", {}).get("queues", {})
        found: dict[str, Any] = {}
        if "maxDequeueCount" in queues:
            found["max_dequeue_count"] = int(queues["maxDequeueCount"])
        if "batchSize" in queues:
            found["batch_size"] = int(queues["batchSize"])
        if "visibilityTimeout" in queues:
            found["retry_delay_seconds"] = round(timespan(queues["visibilityTimeout"]))
        if "maxPollingInterval" in queues:  # the host polls an empty queue at most this far apart
            found["poll_seconds"] = timespan(queues["maxPollingInterval"])
        return cls(**{**found, **{k: v for k, v in overrides.items() if v is not None}})


def timespan(text: object) -> float:
    """A host.json time span, ``hh:mm:ss`` with optional fractions of a second, in seconds."""
    hours, minutes, seconds = str(text).split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def load_app(path: Path) -> func.FunctionApp:
    spec = importlib.util.spec_from_file_location("function_app", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        raise ImportError(f"{path} defines no FunctionApp named 'app'")
    return app


class DevHost:
    def __init__(self, app: func.FunctionApp, options: HostOptions,
                 environ: Mapping[str, str] | None = None) -> None:
        self.options = options
        self.environ = os.environ if environ is None else environ
        self.functions = app.get_functions()  # may be called once per app
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self.http: HttpFrontEnd | None = None

    def describe(self) -> list[str]:
        lines = []
        for fn in self.functions:
            trigger = _trigger(fn)
            what = {"blobTrigger": trigger.get("path"), "queueTrigger": trigger.get("queueName"),
                    "timerTrigger": trigger.get("schedule"),
                    "httpTrigger": f"/api/{trigger.get('route')}"}.get(trigger["type"], "")
            lines.append(f"{fn.get_function_name()}: [{trigger['type']}] {what}")
        return lines

    def start(self) -> None:
        """Bind the HTTP port first (a port in use fails before any trigger runs), then start
        every trigger's watcher."""
        http_routes = [(fn, _trigger(fn)) for fn in self.functions
                       if _trigger(fn)["type"] == "httpTrigger"]
        if http_routes and self.options.http_port is not None:
            self.http = HttpFrontEnd(http_routes, self.options.http_port)
        for fn in self.functions:
            trigger = _trigger(fn)
            kind = trigger["type"]
            if kind == "blobTrigger":
                self._spawn(BlobWatcher(self, fn, trigger).run, fn)
            elif kind == "queueTrigger":
                self._spawn(QueueWatcher(self, fn, trigger).run, fn)
            elif kind == "timerTrigger":
                self._spawn(TimerWatcher(self, fn, trigger).run, fn)
            elif kind != "httpTrigger":
                raise NotImplementedError(f"deployer dev cannot host {kind} functions")
        if self.http is not None:
            self.http.start()

    def _spawn(self, target: Callable[[], None], fn: Any) -> None:
        thread = threading.Thread(target=target, name=f"dev-{fn.get_function_name()}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        if self.http is not None:
            self.http.stop()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def call(self, fn: Any, arg_name: str, value: Any, reason: str) -> Any:
        name = fn.get_function_name()
        started = datetime.now(UTC)
        logger.info("Executing 'Functions.%s' (Reason='%s')", name, reason)
        try:
            result = fn.get_user_function()(**{arg_name: value})
        except Exception:
            logger.exception("Executed 'Functions.%s' (Failed, Duration=%dms)", name,
                             _ms(started))
            raise
        logger.info("Executed 'Functions.%s' (Succeeded, Duration=%dms)", name, _ms(started))
        return result


def _trigger(fn: Any) -> dict[str, Any]:
    trigger = fn.get_trigger()
    if trigger is None:
        raise NotImplementedError(f"function {fn.get_function_name()} has no trigger")
    return dict(trigger.get_dict_repr())


def _ms(started: datetime) -> int:
    return int((datetime.now(UTC) - started).total_seconds() * 1000)
