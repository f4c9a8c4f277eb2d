"""A fresh `azd up` environment for the live tests, torn down at the end (also on failure).

Needs, else every live test is skipped with the reason: `azd` and `az` on PATH and logged in,
AZURE_SUBSCRIPTION_ID, AZURE_LOCATION, PREFECT_API_URL and PREFECT_API_KEY in the environment
(`make live-test` passes them through). The environment is named live-<time>; `azd down --force
--purge` removes both resource groups and purges its Key Vault; the Prefect work pools the run
made are deleted through the Prefect API, so the workspace keeps nothing of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("AZURE_SUBSCRIPTION_ID", "AZURE_LOCATION", "PREFECT_API_URL", "PREFECT_API_KEY")
MODULES = ("finance",)


@dataclass(frozen=True)
class LiveEnvironment:
    name: str
    settings: Path  # .azure/<name>/deployer.settings.json, as postdeploy writes it
    values: dict[str, str]

    def deployer(self, *args: str, timeout: float = 1800,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / ".venv" / "bin" / "deployer"), "--settings", str(self.settings),
                               *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})

    def azd_value(self, key: str) -> str:
        return _azd("env", "get-value", key, env_name=self.name).strip()

    def az(self, *args: str, timeout: float = 900) -> str:
        """``az`` in the environment's subscription (never az's own default)."""
        done = subprocess.run(["az", *args, "--subscription", self.values["AZURE_SUBSCRIPTION_ID"]],
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def settings_values(self) -> dict[str, str]:
        return dict(json.loads(self.settings.read_text())["Values"])

    def json(self, *args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> dict:
        done = self.deployer(*args, "--json", timeout=timeout, env=env)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout)


def _missing() -> list[str]:
    missing = [name for name in NEEDED if not os.environ.get(name)]
    missing += [f"`{tool}` on PATH" for tool in ("azd", "az") if shutil.which(tool) is None]
    return missing


def _azd(*args: str, env_name: str | None = None, timeout: float = 3600) -> str:
    argv = ["azd", *args, "--no-prompt"] + (["-e", env_name] if env_name else [])
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"azd {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _delete_pools(values: dict[str, str]) -> None:
    """The work pools the deployer made for the modules (one per module), by the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: values["PREFECT_API_URL"], PREFECT_API_KEY: values["PREFECT_API_KEY"]}), \
            get_client(sync_client=True) as client:
        for pool in MODULES:
            try:
                client.delete_work_pool(pool)
            except ObjectNotFound:
                pass


@pytest.fixture(scope="session")
def live() -> Iterator[LiveEnvironment]:
    missing = _missing()
    if missing:
        pytest.skip(f"live Azure tests need {', '.join(missing)} (see tests/live/README.md)")
    name = f"live-{time.strftime('%m%d%H%M%S')}"
    values = {k: os.environ[k] for k in NEEDED}
    try:
        _azd("env", "new", name, "--subscription", values["AZURE_SUBSCRIPTION_ID"],
             "--location", values["AZURE_LOCATION"])
        for key in ("PREFECT_API_URL", "PREFECT_API_KEY"):
            _azd("env", "set", key, values[key], env_name=name)
        _azd("up", env_name=name, timeout=5400)
        settings = ROOT / ".azure" / name / "deployer.settings.json"
        assert settings.is_file(), "postdeploy did not write the CLI's settings"
        yield LiveEnvironment(name, settings, values)
    finally:
        errors = []
        try:
            _azd("down", "--force", "--purge", env_name=name, timeout=3600)
        except Exception as exc:  # report, and still delete the pools
            errors.append(str(exc))
        try:
            _delete_pools(values)
        except Exception as exc:
            errors.append(f"deleting the Prefect work pools {MODULES}: {exc}")
        shutil.rmtree(ROOT / ".azure" / name, ignore_errors=True)
        if errors:
            raise RuntimeError("live teardown incomplete:\n" + "\n".join(errors))
