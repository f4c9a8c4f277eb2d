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
import re
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.functions.blob import InputStream
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from deployer import ncrontab
from deployer.devhost.http import HttpFrontEnd
from deployer.errors import ConfigError

logger = logging.getLogger("deployer.devhost")
HOST_ID = "deployer-dev"
#: the host's blob trigger gives up on a blob after this many failures
BLOB_MAX_ATTEMPTS = 5
_SETTING = re.compile(r"%([^%]+)%")


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
            h, m, s = (int(x) for x in str(queues["visibilityTimeout"]).split(":"))
            found["retry_delay_seconds"] = h * 3600 + m * 60 + s
        return cls(**{**found, **{k: v for k, v in overrides.items() if v is not None}})


def resolve(value: str, environ: Mapping[str, str]) -> str:
    """``%SETTING%`` binding expressions, resolved from app settings as the host does."""
    def one(match: re.Match[str]) -> str:
        if match.group(1) not in environ:
            raise ConfigError([f"binding expression %{match.group(1)}% in {value!r} names no "
                               "app setting"])
        return environ[match.group(1)]
    return _SETTING.sub(one, value)


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
        http_routes = []
        for fn in self.functions:
            trigger = _trigger(fn)
            kind = trigger["type"]
            if kind == "blobTrigger":
                self._spawn(BlobWatcher(self, fn, trigger).run, fn)
            elif kind == "queueTrigger":
                self._spawn(QueueWatcher(self, fn, trigger).run, fn)
            elif kind == "timerTrigger":
                self._spawn(TimerWatcher(self, fn, trigger).run, fn)
            elif kind == "httpTrigger":
                http_routes.append((fn, trigger))
            else:
                raise NotImplementedError(f"deployer dev cannot host {kind} functions")
        if http_routes and self.options.http_port is not None:
            self.http = HttpFrontEnd(http_routes, self.options.http_port)
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


class BlobWatcher:
    def __init__(self, host: DevHost, fn: Any, trigger: dict[str, Any]) -> None:
        from deployer.adapters.devhost_storage import BlobReceipts

        self.host, self.fn, self.trigger = host, fn, trigger
        self.connection_name = trigger.get("connection") or "AzureWebJobsStorage"
        self.connection = host.environ[self.connection_name]
        path = resolve(trigger["path"], host.environ)
        self.container, _, self.pattern = path.partition("/")
        self.receipts = BlobReceipts(self.connection, HOST_ID, fn.get_function_name())
        self.failures: dict[tuple[str, str], int] = {}
        self.pytype = typing.get_type_hints(fn.get_user_function()).get(trigger["name"])

    def run(self) -> None:
        while not self.host.stop_event.is_set():
            try:
                self.scan()
            except Exception:
                logger.exception("blob scan of %s failed", self.container)
            self.host.stop_event.wait(self.host.options.poll_seconds)

    def scan(self) -> None:
        seen = self.receipts.seen(self.container)
        for name, etag in self.receipts.blobs(self.container):
            if seen.get(name) == etag or not _matches(self.pattern, name):
                continue
            if self.host.stop_event.is_set():
                return
            try:
                self.host.call(self.fn, self.trigger["name"], self.argument(name),
                               f"New blob detected({self.container}/{name})")
            except Exception:
                tries = self.failures.get((name, etag), 0) + 1
                self.failures[(name, etag)] = tries
                if tries < BLOB_MAX_ATTEMPTS:
                    continue
                self.receipts.poison(self.connection, self.fn.get_function_name(),
                                     self.container, name, etag)
            self.receipts.write(self.container, name, etag)

    def argument(self, name: str) -> Any:
        from azurefunctions.extensions.base import Datum
        from azurefunctions.extensions.base.meta import _ConverterMeta

        if self.pytype is not None and _ConverterMeta.check_supported_type(self.pytype):
            # what the host sends for an SDK-type binding: model binding data naming the blob
            content = json.dumps({"Connection": self.connection_name,
                                  "ContainerName": self.container, "BlobName": name})
            datum = Datum(SimpleNamespace(version="1.0", source="AzureStorageBlobs",
                                          content_type="application/json", content=content),
                          "model_binding_data")
            converter = _ConverterMeta.get("blobTrigger")
            return converter.decode(datum, trigger_metadata={}, pytype=self.pytype)
        from azure.storage.blob import BlobClient

        blob = BlobClient.from_connection_string(self.connection, self.container, name)
        data = blob.download_blob().readall()
        return InputStream(data=data, name=f"{self.container}/{name}", uri=blob.url,
                           length=len(data))


class QueueWatcher:
    def __init__(self, host: DevHost, fn: Any, trigger: dict[str, Any]) -> None:
        from deployer.adapters.devhost_storage import poison_queue, request_queue

        self.host, self.fn, self.trigger = host, fn, trigger
        connection = host.environ[trigger.get("connection") or "AzureWebJobsStorage"]
        name = resolve(trigger["queueName"], host.environ)
        self.queue = request_queue(connection, name)
        self.poison = poison_queue(connection, name)
        self.pool = ThreadPoolExecutor(max_workers=host.options.batch_size,
                                       thread_name_prefix=f"dev-{name}")
        self.active: set[Future[None]] = set()

    def run(self) -> None:
        options = self.host.options
        while not self.host.stop_event.is_set():
            self.active = {f for f in self.active if not f.done()}
            free = options.batch_size - len(self.active)
            received = []
            if free > 0:
                try:
                    received = self.queue.receive(visibility_timeout=options.lease_seconds,
                                                  max_messages=free)
                except Exception:
                    logger.exception("dequeue from %s failed", self.queue.name)
            for message in received:
                self.active.add(self.pool.submit(self.handle, message))
            if not received:
                self.host.stop_event.wait(options.poll_seconds)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def handle(self, message: Any) -> None:
        options = self.host.options
        holder = {"message": message}
        guard = threading.Lock()
        done = threading.Event()

        def keep_invisible() -> None:
            while not done.wait(options.lease_seconds / 2):
                with guard:
                    try:
                        holder["message"] = self.queue.hide(holder["message"], options.lease_seconds)
                    except Exception:
                        logger.warning("could not renew the lease of message %s", message.id)

        renewer = threading.Thread(target=keep_invisible, daemon=True)
        renewer.start()
        arg = QueueMessage(id=message.id, body=message.body, dequeue_count=message.dequeue_count,
                           insertion_time=message.inserted_on, pop_receipt=message.pop_receipt)
        try:
            self.host.call(self.fn, self.trigger["name"], arg,
                           f"New queue message detected on '{self.queue.name}'")
        except Exception:
            done.set()
            renewer.join()
            with guard:
                current = holder["message"]
                if message.dequeue_count >= options.max_dequeue_count:
                    logger.error("message %s failed %d times: moved to %s", message.id,
                                 message.dequeue_count, self.poison.name)
                    self.poison.send(message.body)
                    self.queue.delete(current)
                else:
                    self.queue.hide(current, options.retry_delay_seconds)
            return
        done.set()
        renewer.join()
        with guard:
            self.queue.delete(holder["message"])


class TimerWatcher:
    def __init__(self, host: DevHost, fn: Any, trigger: dict[str, Any]) -> None:
        self.host, self.fn, self.trigger = host, fn, trigger
        self.schedule = ncrontab.parse(resolve(trigger["schedule"], host.environ))

    def run(self) -> None:
        if self.trigger.get("runOnStartup"):
            self.fire(past_due=False)
        while not self.host.stop_event.is_set():
            due = self.schedule.next_after(datetime.now(UTC))
            wait = (due - datetime.now(UTC)).total_seconds()
            if self.host.stop_event.wait(max(wait, 0)):
                return
            late = (datetime.now(UTC) - due).total_seconds()
            self.fire(past_due=late > 1.0)

    def fire(self, *, past_due: bool) -> None:
        try:
            self.host.call(self.fn, self.trigger["name"], TimerRequest(past_due=past_due),
                           "Timer fired")
        except Exception:  # logged by call(); the next occurrence runs as scheduled
            return


def _trigger(fn: Any) -> dict[str, Any]:
    trigger = fn.get_trigger()
    if trigger is None:
        raise NotImplementedError(f"function {fn.get_function_name()} has no trigger")
    return dict(trigger.get_dict_repr())


def _matches(pattern: str, name: str) -> bool:
    regex = re.escape(pattern)
    regex = re.sub(r"\\\{[^}]+\\\}", ".+", regex)
    return re.fullmatch(regex, name) is not None


def _ms(started: datetime) -> int:
    return int((datetime.now(UTC) - started).total_seconds() * 1000)
