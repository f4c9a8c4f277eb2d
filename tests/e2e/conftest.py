from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Stack


@pytest.fixture(scope="session")
def venv_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv store for the session: modules with the same requirements share a venv, as
    they do on a developer's machine (each test still has its own images and agents)."""
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture
def stack(storage_connection: str, prefect_api: str, tmp_path: Path, venv_store: Path) -> Iterator[Stack]:
    s = Stack(storage_connection, prefect_api, tmp_path, venvs=venv_store)
    try:
        yield s
    finally:
        s.cleanup()
