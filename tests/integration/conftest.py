from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.bootstrap import AppServices, build
from deployer.config import Settings

KEY = "integration-test-digest-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]


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


@dataclass(frozen=True)
class Ran:
    """What a CLI command printed and returned, as a subprocess would see it."""

    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Ran]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``deployer ARGS`` in this process (the entry point's own tests run it as a process):
    the environment holds no deployer or Prefect setting, the folder is ``cwd``."""
    from deployer.cli import main

    for key in list(os.environ):
        if key.startswith(("DEPLOYER_", "PREFECT_", "AzureWebJobs")):
            monkeypatch.delenv(key)

    def run(*args: str, cwd: Path = ROOT) -> Ran:
        capsys.readouterr()
        monkeypatch.chdir(cwd)
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's --version and --help end the process
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run
