from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deployer.bootstrap import AppServices, build
from deployer.config import Settings

KEY = "integration-test-digest-key-0123456789"


def settings_for(connection: str, suffix: str | None = None, **overrides: str) -> Settings:
    tag = suffix or uuid.uuid4().hex[:10]
    return Settings.from_env({
        "AzureWebJobsStorage": connection,
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "DEPLOYER_CONFIG_DIGEST_KEY": KEY,
        "DEPLOYER_BUNDLES_CONTAINER": f"bundles-{tag}",
        "DEPLOYER_STATE_CONTAINER": f"state-{tag}",
        "DEPLOYER_REQUEST_QUEUE": f"requests-{tag}",
        "DEPLOYER_LOCK_LEASE_SECONDS": "15",
        **overrides,
    })


@pytest.fixture
def services(storage_connection: str) -> Iterator[AppServices]:
    yield build(settings_for(storage_connection))
