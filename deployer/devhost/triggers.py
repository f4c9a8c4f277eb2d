"""How ``deployer dev`` feeds each kind of trigger: blob scans with receipts, queue leases with
retries and a poison queue, NCRONTAB timers. The HTTP front end is in ``http.py``."""

from __future__ import annotations

import json
import logging
import re
import threading
import typing
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from azure.functions.blob import InputStream
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from deployer import ncrontab
from deployer.errors import ConfigError

if TYPE_CHECKING:
    from deployer.devhost.host import DevHost

logger = logging.getLogger("deployer.devhost")
HOST_ID = "deployer-dev"
#: the host's blob trigger gives up on a blob after this many failures
BLOB_MAX_ATTEMPTS = 5
_SETTING = re.compile(r"%([^%]+)%")


def resolve(value: str, environ: Mapping[str, str]) -> str:
    """``%SETTING%`` binding expressions, resolved from app settings as the host does."""
    def one(match: re.Match[str]) -> str:
        if match.group(1) not in environ:
            raise ConfigError([f"binding expression %{match.group(1)}% in {value!r} names no "
                               "app setting"])
        return environ[match.group(1)]
    return _SETTING.sub(one, value)


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
        # azure-functions' QueueMessage has no annotations
        arg = QueueMessage(  # type: ignore[no-untyped-call]
            id=message.id, body=message.body, dequeue_count=message.dequeue_count,
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


def _matches(pattern: str, name: str) -> bool:
    regex = re.escape(pattern)
    regex = re.sub(r"\\\{[^}]+\\\}", ".+", regex)
    return re.fullmatch(regex, name) is not None
