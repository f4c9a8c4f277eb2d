"""Against a real subscription: skipped unless the azure backend's settings are in the
environment (see README, "Live tests"). They create and delete one container group and run one
ACR build, in the resource group and registry the settings name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from deployer.config import Settings
from deployer.errors import ConfigError

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("AZURE_SUBSCRIPTION_ID", "DEPLOYER_RESOURCE_GROUP", "DEPLOYER_LOCATION", "DEPLOYER_REGISTRY",
            "PREFECT_API_URL", "DEPLOYER_CONFIG_DIGEST_KEY", "AzureWebJobsStorage")


def live_settings() -> Settings:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live Azure tests need {', '.join(missing)}")
    try:
        return Settings.from_env({**os.environ, "DEPLOYER_BACKEND": "azure"})
    except ConfigError as exc:
        pytest.skip(f"live Azure settings are incomplete: {exc}")


@pytest.fixture(scope="module")
def services():  # type: ignore[no-untyped-def]
    from deployer.bootstrap import build

    return build(live_settings(), interactive=True)


def test_the_registry_and_the_resource_group_are_reachable(services) -> None:  # type: ignore[no-untyped-def]
    assert services.builder.find("no-such-module", "sha256:" + "0" * 64) is None
    services.runtime.list()  # lists without error: the identity may read the resource group


def test_a_build_and_an_agent_round_trip(services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from deployer.bundle import load_folder
    from deployer.ports import AgentSpec, AgentState

    module = load_folder(ROOT / "flows" / "finance", services.limits)
    code = module.code_digest()
    image = services.builder.find("finance", code) or services.builder.build(
        "finance", code, module.root, resume={}, checkpoint=lambda detail: None)
    assert services.builder.resolve("finance", image.ref) is not None
    name = f"{services.settings.agent_prefix}-finance-live-{int(time.time())}"
    services.runtime.start(AgentSpec(name=name, module="finance", revision_id="live", image=image,
                                     pool="finance-live", queue=name, env={"LIVE_TEST": "1"},
                                     settings={"PREFECT_API_URL": services.settings.prefect_api_url}))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            info = services.runtime.get(name)
            if info is not None and info.state in (AgentState.RUNNING, AgentState.FAILED):
                break
            time.sleep(10)
        assert info is not None and info.state is AgentState.RUNNING, info
    finally:
        services.runtime.stop(name)
