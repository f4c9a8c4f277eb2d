"""Session services for the test tiers: Azurite and a Prefect server, started on free loopback
ports only when a test asks for them, and stopped (by PID) when the session ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# -- a real headless browser (Debian's chromium, driven by Playwright) ---------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
#: screenshots the browser tests keep (CI keeps the folder as an artifact)
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Per test, not per session: Playwright's sync API keeps an event loop running in this
    thread while it is started, and the code under test calls asyncio.run (Prefect's steps)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (`make test` installs it with apt: "
                    "`apt-get install chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def laptop(browser: Any) -> Iterator[Any]:
    """A page the size of a laptop screen."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        yield page
    finally:
        page.close()
