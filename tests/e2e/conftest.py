from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Stack


@pytest.fixture
def stack(storage_connection: str, prefect_api: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(storage_connection, prefect_api, tmp_path)
    try:
        yield s
    finally:
        s.cleanup()
