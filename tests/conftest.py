"""Session services for the test tiers: Azurite and a Prefect server on free loopback ports,
stopped (by PID) when the session ends.

A distributed run (``pytest -n N``, what ``make test`` does) starts them once, in the controlling
process before its workers exist, and the workers find them through ``SHARED``: N workers, one
Azurite and one Prefect server (tests name their containers, queues, pools and modules uniquely,
so they never see each other's). A run in one process starts them when a test first asks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer import devservices

ROOT = Path(__file__).resolve().parents[1]
#: where a distributed run's workers find the services its controller started (JSON)
SHARED = "PYTEST_DEPLOYER_SERVICES"
#: tiers that never touch a service: a distributed run of only these starts none
NO_SERVICES = (ROOT / "tests" / "unit",)


def _needs_services(args: list[str]) -> bool:
    paths = [Path(a.split("::")[0]).resolve() for a in args] or [ROOT / "tests"]
    return any(not any(p == t or t in p.parents for t in NO_SERVICES) for p in paths)


def pytest_configure(config: pytest.Config) -> None:
    distributed = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not distributed or os.environ.get(SHARED) \
            or not _needs_services(list(config.args)):
        return
    stack = contextlib.ExitStack()
    base = Path(tempfile.mkdtemp(prefix="deployer-test-services-"))
    stack.callback(shutil.rmtree, base, True)
    found: dict[str, Any] = {}
    lock = threading.Lock()

    def start(name: str, context: Any) -> None:
        try:
            value = context.__enter__()
        except BaseException as exc:  # reported below, in this thread
            found[name] = exc
            return
        with lock:
            stack.push(context.__exit__)
            found[name] = value

    # both at once: the Prefect server migrates its database while Azurite starts
    threads = [threading.Thread(target=start, args=("azurite", devservices.azurite(base / "azurite"))),
               threading.Thread(target=start, args=("prefect", devservices.prefect_server(base / "prefect")))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    config.add_cleanup(stack.close)
    for value in found.values():
        if isinstance(value, BaseException):
            raise value
    azurite: devservices.AzuriteEndpoints = found["azurite"]
    os.environ[SHARED] = json.dumps({"azurite": [azurite.blob_port, azurite.queue_port],
                                     "prefect": found["prefect"]})


def _shared() -> dict[str, Any] | None:
    raw = os.environ.get(SHARED)
    return json.loads(raw) if raw else None


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devservices.AzuriteEndpoints]:
    shared = _shared()
    if shared is not None:
        yield devservices.AzuriteEndpoints(*shared["azurite"])
        return
    with devservices.azurite(tmp_path_factory.mktemp("azurite")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def storage_connection(azurite: devservices.AzuriteEndpoints) -> str:
    return azurite.connection_string


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    shared = _shared()
    if shared is not None:
        yield shared["prefect"]
        return
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
