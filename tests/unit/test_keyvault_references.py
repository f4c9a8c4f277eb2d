"""Key Vault references in .env: parsed and checked at validate time, pinned to a version when a
bundle is accepted (the version is part of the config digest), read only when an agent starts and
handed over as a secure value; a reference the identity cannot read rejects the bundle before any
agent starts; a rotated secret is redeployed by the nightly check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from deployer.bundle.envfile import parse_env
from deployer.bundle.keyvault_ref import SecretRef, parse_reference
from deployer.models import RunStatus
from deployer.pipeline.intake import accept_bundle
from deployer.pipeline.secret_rotation import redeploy_rotated
from tests.builders import module_tar
from tests.fakes.platform import FakeSecrets
from tests.unit.pipeline_world import World

VAULT = "https://kv-demo.vault.azure.net"
REF = "@Microsoft.KeyVault(SecretUri=https://kv-demo.vault.azure.net/secrets/api-token)"
VERSION = "4387e9f3d6e14c459867679a90fd0f79"


@pytest.mark.parametrize(("value", "expected"), [
    (REF, SecretRef(VAULT, "api-token")),
    (f"@Microsoft.KeyVault(SecretUri={VAULT}/secrets/api-token/{VERSION})", SecretRef(VAULT, "api-token", VERSION)),
    ("@Microsoft.KeyVault(VaultName=kv-demo;SecretName=api-token)", SecretRef(VAULT, "api-token")),
    (f"@Microsoft.KeyVault(VaultName=kv-demo;SecretName=api-token;SecretVersion={VERSION})",
     SecretRef(VAULT, "api-token", VERSION)),
    ("@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.cn/secrets/x)", SecretRef("https://kv.vault.azure.cn", "x")),
])
def test_references_in_app_services_syntax(value: str, expected: SecretRef) -> None:
    assert parse_reference(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("@Microsoft.KeyVault(SecretUri=http://kv-demo.vault.azure.net/secrets/x)", "must be https://"),
    ("@Microsoft.KeyVault(SecretUri=https://evil.example.com/secrets/x)", "must be https://"),
    ("@Microsoft.KeyVault(SecretUri=https://kv-demo.vault.azure.net/keys/x)", "must be https://"),
    ("@Microsoft.KeyVault(SecretUri=https://kv-demo.vault.azure.net/secrets/x/notahex)", "32 hexadecimal"),
    ("@Microsoft.KeyVault(VaultName=kv-demo)", "names VaultName and SecretName"),
    ("@Microsoft.KeyVault(SecretUri=https://kv-demo.vault.azure.net/secrets/x", "ends with ')'"),
    ("@Microsoft.KeyVault(SecretName=a_b;VaultName=kv-demo)", "not a Key Vault secret name"),
])
def test_a_malformed_reference_is_a_problem_with_its_line_and_key(value: str, expected: str) -> None:
    env = parse_env(f"# comment\nAPI_TOKEN={value}\n".encode())
    [problem] = env.problems
    assert problem.line == 2 and problem.message.startswith("API_TOKEN: ") and expected in problem.message


def _upload(world: World, env: str, n: int = 1) -> str:
    blob = f"demo/{n:04d}.tar.gz"
    world.bundles.put(blob, module_tar("demo", changes={".env": env}))
    return blob


def _secrets(world: World) -> FakeSecrets:
    return world.services.secrets  # type: ignore[return-value]


def _everything_stored(world: World) -> bytes:
    docs = world.state.docs._docs  # type: ignore[attr-defined]
    return b"\n".join(d.body for d in docs.values())


def test_a_reference_is_pinned_read_at_start_and_never_stored(world: World) -> None:
    version = _secrets(world).set("kv-demo", "api-token", "tok-value-1")
    record = accept_bundle(world.services, _upload(world, f"API_TOKEN={REF}\nPLAIN=1\n"))
    assert record.status is RunStatus.QUEUED, record.error
    got = world.state.run("demo", record.request_id)
    assert got is not None
    revision = got.value.revision
    assert revision.secrets == (("API_TOKEN", f"{VAULT}/secrets/api-token/{version}"),)
    world.pump(until=lambda: world.state.run("demo", record.request_id).value.status.finished)  # type: ignore[union-attr]
    assert world.state.run("demo", record.request_id).value.status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    [agent] = world.runtime.agents.values()
    assert agent.spec.env == {"API_TOKEN": "tok-value-1", "PLAIN": "1", "PREFECT_API_KEY": "pnu_secret_key"}
    assert b"tok-value-1" not in _everything_stored(world)
    assert ("api-token", version) in _secrets(world).reads  # the pinned version, at start


def test_an_unreadable_reference_rejects_the_bundle_naming_key_and_vault(world: World) -> None:
    fake = _secrets(world)
    fake.set("kv-demo", "api-token", "s3cr3t-never-shown")
    fake.forbidden.add((VAULT, "api-token"))
    record = accept_bundle(world.services, _upload(world, f"API_TOKEN={REF}\n"))
    assert record.status is RunStatus.REJECTED
    text = json.dumps(record.error)
    assert "API_TOKEN" in text and "'kv-demo'" in text and "'api-token'" in text and "may not read" in text
    assert "s3cr3t-never-shown" not in text
    assert world.runtime.started == [] and world.state.module("demo") is None


def test_a_rotated_secret_is_a_config_change_the_nightly_check_redeploys(world: World) -> None:
    fake = _secrets(world)
    fake.set("kv-demo", "api-token", "tok-value-1")
    first = accept_bundle(world.services, _upload(world, f"API_TOKEN={REF}\n"))
    world.pump(until=lambda: world.state.run("demo", first.request_id).value.status.finished)  # type: ignore[union-attr]
    old_agent = world.current_agent()
    assert redeploy_rotated(world.services) == []  # nothing moved
    fake.set("kv-demo", "api-token", "tok-value-2")  # rotated in the vault, later than the upload
    world.clock.now = max(world.clock.now, datetime.now(UTC)) + timedelta(hours=1)
    [planned] = redeploy_rotated(world.services, dry_run=True)
    assert planned.keys == ("API_TOKEN",) and planned.request_id == ""
    [rotated] = redeploy_rotated(world.services)
    assert rotated.request_id and not rotated.error
    assert redeploy_rotated(world.services)[0].request_id == rotated.request_id  # queued once
    world.pump(until=lambda: world.state.run("demo", rotated.request_id).value.status.finished)  # type: ignore[union-attr]
    record = world.state.run("demo", rotated.request_id).value  # type: ignore[union-attr]
    assert record.status is RunStatus.SUCCEEDED, record.error
    new_agent = world.current_agent()
    assert new_agent != old_agent and world.runtime.agents[new_agent].spec.env["API_TOKEN"] == "tok-value-2"
    assert record.revision.config_digest != first.revision.config_digest  # type: ignore[union-attr]
    assert len(world.builder.builds) == 1  # the first deploy's: a config change builds nothing
    assert redeploy_rotated(world.services) == []
