"""Session services for the test tiers: Azurite and a Prefect server, started on free loopback
ports only when a test asks for them, and stopped (by PID) when the session ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer import devservices

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devservices.AzuriteEndpoints]:
    with devservices.azurite(tmp_path_factory.mktemp("azurite")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def storage_connection(azurite: devservices.AzuriteEndpoints) -> str:
    return azurite.connection_string


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with devservices.prefect_server(tmp_path_factory.mktemp("prefect")) as url:
        yield url
