"""The one place that chooses adapters: settings in, a ``Services`` bundle of ports out.

Clients are built lazily and once per process; nothing here runs at import time.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from deployer.bundle import BundleLimits
from deployer.config import MIB, Settings
from deployer.ports import BundleStore, RequestQueue
from deployer.state import StateRepository


@dataclass
class Services:
    settings: Settings
    state: StateRepository
    bundles: BundleStore
    queue: RequestQueue

    @property
    def limits(self) -> BundleLimits:
        return limits_from(self.settings)


def limits_from(settings: Settings) -> BundleLimits:
    return BundleLimits(max_bytes=settings.max_bundle_mb * MIB,
                        max_entries=settings.max_bundle_entries,
                        max_ratio=settings.max_compression_ratio)


#: storage's default retry backs off 15 s, 60 s, ... : right for a queue-driven function, far too
#: long for someone waiting at a prompt; the CLI fails within seconds instead
INTERACTIVE_RETRIES = 3
INTERACTIVE_BACKOFF_SECONDS = 1


def build(settings: Settings, *, interactive: bool = False) -> Services:
    from azure.storage.blob import BlobServiceClient, LinearRetry

    from deployer.adapters.blob_bundles import BlobBundleStore
    from deployer.adapters.blob_documents import BlobDocumentStore
    from deployer.adapters.storage_queue import StorageQueue, queue_client

    connection = settings.storage_connection.reveal()
    options: dict[str, Any] = ({"retry_policy": LinearRetry(backoff=INTERACTIVE_BACKOFF_SECONDS,
                                            retry_total=INTERACTIVE_RETRIES)}
               if interactive else {})
    blobs = BlobServiceClient.from_connection_string(connection, **options)
    state = StateRepository(BlobDocumentStore(blobs, settings.state_container),
                            lease_seconds=settings.lock_lease_seconds,
                            lock_wait_seconds=settings.lock_wait_seconds)
    return Services(settings=settings, state=state,
                    bundles=BlobBundleStore(blobs, settings.bundles_container),
                    queue=StorageQueue(queue_client(connection, settings.request_queue, **options)))


@functools.cache
def services_from_environment() -> Services:
    """The process-wide services of the Functions app, built on first use."""
    return build(Settings.from_env(os.environ))
