"""The azure backend: the real azure-mgmt and azure-containerregistry clients, over the fake ARM
and ACR endpoints, driven by the same pipeline as the local backend."""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
from pathlib import Path

import pytest

from deployer import codec
from deployer.bundle import BundleLimits, load_archive
from deployer.models import Intent, Request, RequestKind, Revision, RunStatus, StageStatus, Trigger
from deployer.state import StateRepository
from tests.builders import module_tar
from tests.fakes.documents import MemoryDocumentStore
from tests.fakes.platform import FakeBundleStore
from tests.integration.azure_world import IDENTITY, AzureWorld, azure_world

KEY = "azure-test-config-digest-key-0123"
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "DEPLOYER_CONFIG_DIGEST_KEY": KEY}
SECRETS = ("s3cr3t-token-value", "pnu_cloud_api_key_secret")


@pytest.fixture
def world() -> AzureWorld:
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
    return azure_world(BASE, state, FakeBundleStore())


def request(world: AzureWorld, changes: dict | None = None, n: list[int] = [0]) -> Request:  # noqa: B006
    n[0] += 1
    blob = f"demo/{n[0]:04d}.tar.gz"
    bundles: FakeBundleStore = world.services.bundles  # type: ignore[assignment]
    info = bundles.put(blob, module_tar(changes=changes))
    with tempfile.TemporaryDirectory() as work:
        module = load_archive(io.BytesIO(bundles.blobs[blob][0]), Path(work), BundleLimits(), label=blob)
        revision = Revision.of(module, KEY, bundle=blob)
    now = world.azure.clock.now()
    return Request(Request.make_id("blob", blob, info.etag), RequestKind.DEPLOY, "demo",
                   Trigger("blob", blob, {"blob": blob, "etag": info.etag}), revision, now,
                   Intent(now, blob))


def deploy(world: AzureWorld, changes: dict | None = None):  # type: ignore[no-untyped-def]
    world.azure.clock.advance(1)
    return world.run(request(world, changes))


def groups(world: AzureWorld) -> list[str]:
    return sorted(name for (_, name) in world.azure.aci.groups)


def live_groups(world: AzureWorld) -> list[str]:
    return sorted(n for (_, n), g in world.azure.aci.groups.items() if g.deleting_since is None)


def put_bodies(world: AzureWorld) -> list[dict]:
    return [json.loads(body) for kind, method, _, body in world.azure.log
            if kind == "ContainerGroups_CreateOrUpdate"]


def test_a_full_deploy_builds_with_acr_tasks_and_starts_an_aci_group(world: AzureWorld) -> None:
    record = deploy(world)
    assert record.status is RunStatus.SUCCEEDED, record.error
    [run] = world.azure.acr.runs.values()
    assert run.request["platform"] == {"os": "Linux", "architecture": "amd64"}
    assert run.request["type"] == "EncodedTaskRunRequest" and run.request["timeout"] == 3600
    assert run.cached and run.images == [f"prefect-flows/demo:{record.revision.code_digest[7:19]}"]
    assert ".env" not in run.context and "flow.py" in run.context and "Dockerfile" in run.context
    [name] = live_groups(world)
    assert re.fullmatch(r"agent-demo-\d{14}", name)
    [body] = put_bodies(world)
    props = body["properties"]
    assert props["osType"] == "Linux" and props["restartPolicy"] == "Always"
    assert body["tags"] == {"managed-by": "prefect-collective-deployer", "module": "demo",
                            "revision": record.revision.id, "queue": name}
    assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}}
    assert props["imageRegistryCredentials"] == [{"server": "fakeacr.azurecr.io", "identity": IDENTITY}]
    container = props["containers"][0]["properties"]
    assert container["image"].startswith("fakeacr.azurecr.io/prefect-flows/demo:")
    # the image's own entrypoint (tini as init) stays in front: a group's command replaces it;
    # the preflight proves the flows load in the image, then becomes the worker
    *entrypoint, python, flag, script, args = container["command"]
    assert entrypoint == ["/usr/bin/tini", "-g", "--", "/opt/prefect/entrypoint.sh"]
    assert (python, flag) == ("python", "-c") and "load_flow_from_entrypoint" in script
    assert json.loads(args) == {"workdir": "/opt/prefect/flows/demo", "entrypoints": [["hello", "flow.py:hello"]],
                                "worker": ["worker", "start", "--pool", "demo", "--name", name,
                                           "--work-queue", name, "--type", "process"]}
    assert container["resources"] == {"requests": {"cpu": 1.0, "memoryInGB": 1.5}}
    env = {e["name"]: e for e in container["environmentVariables"]}
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "secureValue": "s3cr3t-token-value"}
    assert env["PREFECT_API_KEY"] == {"name": "PREFECT_API_KEY", "secureValue": "pnu_cloud_api_key_secret"}
    assert env["PREFECT_API_URL"]["value"].startswith("https://api.prefect.cloud/")
    # what DefaultAzureCredential in the code store's pull step authenticates as: not a secret
    assert env["AZURE_CLIENT_ID"] == {"name": "AZURE_CLIENT_ID", "value": "00000000-0000-0000-0000-0000000c11e7"}
    assert world.orchestrator.deployments[("demo", "hello")]["working_dir"] == "/opt/prefect/flows/demo"
    state = world.services.state.module("demo").value  # type: ignore[union-attr]
    assert state.current.image == container["image"]  # type: ignore[union-attr]


def test_secret_values_appear_only_as_secure_values(world: AzureWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    record = deploy(world)
    deploy(world, {".env": "GREETING=x\nAPI_TOKEN=s3cr3t-token-value\n"})
    wire = world.azure.bodies().decode("utf-8", "replace")
    for secret in SECRETS:
        occurrences = [m.start() for m in re.finditer(re.escape(secret), wire)]
        assert occurrences, secret
        for at in occurrences:
            assert wire[max(0, at - 16):at].endswith('"secureValue": "'), wire[at - 60:at + 20]
        assert secret not in caplog.text
        state = b"".join(d.body for d in (world.services.state.docs.get(k) for k in world.services.state.docs.list(""))
                         if d is not None)
        assert secret.encode() not in state
    assert secret not in codec.dumps(record).decode()


def test_the_same_revision_again_reuses_the_image_and_the_group(world: AzureWorld) -> None:
    deploy(world)
    calls_before = world.azure.calls.copy()
    record = deploy(world)
    assert record.status is RunStatus.NOOP
    new = world.azure.calls - calls_before
    assert new["Registries_ScheduleRun"] == 0 and new["ContainerGroups_CreateOrUpdate"] == 0


def test_a_config_change_reuses_the_registry_image_without_a_build(world: AzureWorld) -> None:
    deploy(world)
    record = deploy(world, {".env": "GREETING=bonjour\n"})
    assert record.status is RunStatus.SUCCEEDED
    assert world.azure.calls["Registries_ScheduleRun"] == 1
    assert record.stage("reuse-image").status is StageStatus.SKIPPED  # type: ignore[union-attr]
    assert len(live_groups(world)) == 1 and len(groups(world)) == 2  # the old one is being deleted


def test_a_build_is_looked_at_from_short_invocations_and_resumed_after_a_fault(world: AzureWorld) -> None:
    world.azure.acr.build_seconds = 300.0
    world.azure.fail("Runs_Get", times=25, status=503)  # more than the SDK retries: the step is retried
    record = world.run(request(world))
    assert record.status is RunStatus.SUCCEEDED
    assert world.azure.calls["Registries_ScheduleRun"] == 1  # the same run, looked at again
    assert record.stage("build").detail["build_id"] == "cb1"  # type: ignore[union-attr]
    assert any(i.failed for i in world.trigger.invocations)  # type: ignore[union-attr]
    # invocations that did not fail never waited beyond the slice (the failed one spent its time
    # in the SDK's own retries, bounded in production by ARM_RETRY_SECONDS of wall-clock time)
    slice_seconds = world.services.settings.step_slice_seconds
    assert max(i.seconds for i in world.trigger.invocations if not i.failed) <= slice_seconds  # type: ignore[union-attr]
    assert len(world.trigger.invocations) >= 4  # type: ignore[union-attr]


def test_a_failed_build_keeps_the_old_agent_and_reports_the_log_tail(world: AzureWorld) -> None:
    deploy(world)
    old = live_groups(world)
    world.azure.acr.fate = lambda images: "fails"
    record = deploy(world, {"requirements.txt": "prefect\nnope==0\n"})
    assert record.status is RunStatus.FAILED and record.error["code"] == "build_failed"  # type: ignore[index]
    assert "Could not find a version that satisfies the requirement nope==0" in record.error["log_tail"]  # type: ignore[index]
    assert "az acr task logs --registry fakeacr --run-id cb2" in record.error["hint"]  # type: ignore[index]
    assert live_groups(world) == old and world.azure.calls["ContainerGroups_CreateOrUpdate"] == 1


@pytest.mark.parametrize("fate,code", [("fails", "agent_unhealthy"), ("never-starts", "agent_unhealthy")])
def test_a_new_group_that_fails_or_never_starts_is_deleted_and_the_old_one_serves(
        world: AzureWorld, fate: str, code: str) -> None:
    deploy(world)
    [old] = live_groups(world)
    world.azure.aci.fate = lambda name: fate
    record = deploy(world, {".env": "GREETING=x\n"})
    assert record.status is RunStatus.FAILED and record.error["code"] == code  # type: ignore[index]
    assert live_groups(world) == [old]
    assert world.services.state.module("demo").value.agent.name == old  # type: ignore[union-attr]
    if fate == "never-starts":
        assert "did not report within 300s whether its flows load" in record.error["message"]  # type: ignore[index]
    else:
        assert "stopped before it reported whether its flows load" in record.error["message"]  # type: ignore[index]


def test_a_group_whose_flows_do_not_load_in_the_image_is_deleted_and_the_old_one_serves(world: AzureWorld) -> None:
    deploy(world)
    [old] = live_groups(world)
    world.azure.aci.fate = lambda name: "preflight-fails"
    record = deploy(world, {".env": "GREETING=x\n"})
    assert record.status is RunStatus.FAILED and record.error["code"] == "bundle_invalid"  # type: ignore[index]
    [problem] = record.error["problems"]  # type: ignore[index]
    assert problem["file"] == "flow.py" and "ModuleNotFoundError: No module named 'pandas'" in problem["message"]
    assert live_groups(world) == [old] and record.stage("register") is None


def test_429_storms_are_retried_as_retry_after_says_and_the_deploy_succeeds(world: AzureWorld) -> None:
    world.azure.throttle("*", times=18, retry_after=7)  # the next 18 ARM calls, whatever they are
    start = world.azure.clock.now()
    record = deploy(world)
    assert record.status is RunStatus.SUCCEEDED
    waited = (world.azure.clock.now() - start).total_seconds()
    assert world.azure.faults[0].remaining == 0  # all 18 were served, and retried
    assert world.azure.clock.slept >= 18 * 7  # every 429 was waited out for its Retry-After
    assert waited < 900  # within the deploy's own budget (health + build timeouts)


def test_5xx_faults_are_retried_by_the_sdk(world: AzureWorld) -> None:
    world.azure.fail("ContainerGroups_Get", times=3, status=503)
    world.azure.fail("Registries_ScheduleRun", times=1, status=500)
    assert deploy(world).status is RunStatus.SUCCEEDED


def test_requests_use_the_specs_api_versions_and_bearer_tokens(world: AzureWorld) -> None:
    deploy(world)
    urls = [url for kind, _, url, _ in world.azure.log if kind.startswith(("ContainerGroups", "Registries", "Runs"))]
    assert all("api-version=2023-05-01" in u for u in urls if "ContainerInstance" in u)
    assert all("api-version=2025-03-01-preview" in u for u in urls if "ContainerRegistry" in u)
    assert world.azure.calls["arm:unauthenticated"] == 0


def test_seed_deploy_sh_groups_are_recognised_as_the_modules_agents(world: AzureWorld) -> None:
    from azure.mgmt.containerinstance import models as m

    body = m.ContainerGroup(location="westeurope", os_type="Linux", containers=[m.Container(
        name="agent", image="fakeacr.azurecr.io/prefect-agent-image:20240101",
        resources=m.ResourceRequirements(requests=m.ResourceRequests(cpu=1, memory_in_gb=1)))])
    world.clients.aci.container_groups.begin_create_or_update("agents", "agent-demo-20240101120000", body,
                                                             polling=False).result()
    world.clients.aci.container_groups.begin_create_or_update("agents", "unrelated-thing", body,
                                                             polling=False).result()
    agents = world.services.runtime.list("demo")
    assert [a.name for a in agents] == ["agent-demo-20240101120000"]
    record = deploy(world)  # the seed's group is retired like any old agent
    assert record.status is RunStatus.SUCCEEDED
    assert record.stage("stop-agent agent-demo-20240101120000").status is StageStatus.DONE  # type: ignore[union-attr]
    assert "unrelated-thing" in live_groups(world)


def test_the_fake_rejects_what_aci_would_reject(world: AzureWorld) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.containerinstance import models as m

    bad = m.ContainerGroup(location="westeurope", os_type="Linux", containers=[m.Container(
        name="agent", image="x", environment_variables=[m.EnvironmentVariable(name="A", value="1", secure_value="2")],
        resources=m.ResourceRequirements(requests=m.ResourceRequests(cpu=8, memory_in_gb=1)))])
    with pytest.raises(HttpResponseError) as info:
        world.clients.aci.container_groups.begin_create_or_update("agents", "Bad_Name", bad, polling=False)
    message = str(info.value)
    assert info.value.status_code == 400
    for expected in ("container group name", "exactly one of value, secureValue", "cpu must be"):
        assert expected in message


def test_with_the_build_cache_off_a_build_is_a_plain_quick_build() -> None:
    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
    world = azure_world({**BASE, "DEPLOYER_BUILD_CACHE": "off"}, state, FakeBundleStore())
    assert deploy(world).status is RunStatus.SUCCEEDED
    [run] = world.azure.acr.runs.values()
    assert run.request["type"] == "DockerBuildRequest" and run.request["isPushEnabled"] is True
    assert not run.cached


@pytest.mark.parametrize("task,error", [
    ("version: v1.0.0\nsteps: []\n", "v1.1.0 task"),
    ("version: v1.1.0\nsteps:\n  - build: -t {{.Run.Registry}}/x:1 .\n    cache: always\n", "cache is 'enabled'"),
    ("version: v1.1.0\nsteps:\n  - build: -t {{.Run.Registry}}/x:1 .\n  - push: ['{{.Run.Registry}}/y:1']\n",
     "which no build step tagged"),
    ("version: v1.1.0\nsteps:\n  - build: -t other.io/x:1 .\n  - push: ['other.io/x:1']\n", "run's registry"),
    ("version: v1.1.0\nsteps:\n  - build: -t {{.Run.Registry}}/x:1 .\n    cachee: enabled\n", "not a step property"),
])
def test_the_fake_refuses_a_task_acr_would_refuse(world: AzureWorld, task: str, error: str) -> None:
    """The fake's own contract: a task it cannot parse is a 400, as it is from ACR."""
    import base64

    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.containerregistry.v2025_03_01_preview.models import (
        EncodedTaskRunRequest,
        PlatformProperties,
    )

    clients, settings = world.clients, world.services.settings
    upload = clients.acr.registries.get_build_source_upload_url(settings.registry_group, settings.registry)
    clients.blob(upload.upload_url).upload_blob(_context_tar(), overwrite=True)
    request = EncodedTaskRunRequest(encoded_task_content=base64.b64encode(task.encode()).decode(),
                                    source_location=upload.relative_path,
                                    platform=PlatformProperties(os="Linux", architecture="amd64"))
    with pytest.raises(HttpResponseError) as info:
        clients.acr.registries.schedule_run(settings.registry_group, settings.registry, request)
    assert info.value.status_code == 400 and error in str(info.value)


def _context_tar() -> bytes:
    from tests.builders import tar_gz

    return tar_gz([("Dockerfile", b"FROM scratch\n"), ("requirements.txt", b"prefect\n")])


def test_a_request_azure_refuses_says_what_was_refused() -> None:
    from deployer.adapters.azure_errors import azure_errors
    from deployer.errors import UpstreamError

    state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
    world = azure_world(BASE, state, FakeBundleStore())
    settings = world.services.settings
    with pytest.raises(UpstreamError) as info, azure_errors("schedule a build"):
        world.clients.acr.registries.schedule_run(settings.registry_group, settings.registry, {"kind": "x"})
    assert info.value.message == "schedule a build: Azure answered 400 InvalidRequestContent: body.type: required"


def test_remove_deletes_the_modules_container_groups_through_arm_and_keeps_its_history(world: AzureWorld) -> None:
    from deployer.pipeline.remove import remove_module

    first = deploy(world)
    assert first.status is RunStatus.SUCCEEDED and len(live_groups(world)) == 1
    removal = remove_module(world.services, "demo")
    assert removal.agents == tuple(groups(world))
    assert live_groups(world) == []  # deleted (or deleting) through ARM
    assert world.services.state.module("demo").value.agent is None  # type: ignore[union-attr]
    assert [e.outcome.value for e in world.services.state.history("demo")] == ["succeeded", "removed"]


# -- the fake refuses what Azure refuses --------------------------------------------------------


def _group(image: str = "fakeacr.azurecr.io/x:1"):  # type: ignore[no-untyped-def]
    from azure.mgmt.containerinstance import models as m

    return m.ContainerGroup(location="westeurope", os_type="Linux", containers=[m.Container(
        name="agent", image=image, resources=m.ResourceRequirements(requests=m.ResourceRequests(
            cpu=1, memory_in_gb=1)))])


@pytest.mark.parametrize("name", ["agent-ab--20261201120000", "agent--x", "x-", "-x"])
def test_the_fake_refuses_group_names_aci_refuses(world: AzureWorld, name: str) -> None:
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as info:
        world.clients.aci.container_groups.begin_create_or_update("agents", name, _group(), polling=False)
    assert info.value.status_code == 400 and "no consecutive '-'" in str(info.value)


def test_the_fake_refuses_a_put_on_a_group_being_deleted(world: AzureWorld) -> None:
    from azure.core.exceptions import HttpResponseError

    aci = world.clients.aci.container_groups
    aci.begin_create_or_update("agents", "agent-x-20261201120000", _group(), polling=False)
    aci.begin_delete("agents", "agent-x-20261201120000", polling=False)
    with pytest.raises(HttpResponseError) as info:
        aci.begin_create_or_update("agents", "agent-x-20261201120000", _group(), polling=False)
    assert info.value.status_code == 409
    world.azure.clock.advance(world.azure.aci.delete_seconds)  # gone: the name is free again
    aci.begin_create_or_update("agents", "agent-x-20261201120000", _group(), polling=False)


def test_a_new_agent_never_takes_the_name_of_a_group_still_being_deleted(world: AzureWorld) -> None:
    """Groups of failed deploys in the same seconds are still being deleted: the new agent gets a
    name of its own instead of a 409 (or a group ACI drops)."""
    from datetime import timedelta

    deploy(world)
    aci, now = world.clients.aci.container_groups, world.azure.clock.now()
    deleting = {f"agent-demo-{now + timedelta(seconds=s):%Y%m%d%H%M%S}" for s in range(60)}
    for name in deleting:
        aci.begin_create_or_update("agents", name, _group(), polling=False)
        aci.begin_delete("agents", name, polling=False)
    record = deploy(world, {".env": "GREETING=y\n"})
    assert record.status is RunStatus.SUCCEEDED, record.error
    new = record.stage("start-agent").detail["agent"]  # type: ignore[union-attr]
    assert new not in deleting and new.rsplit("-", 1)[0] in deleting  # the same second, "-2"
    assert not [s for k, _, s in world.azure.timeline if k == "ContainerGroups_CreateOrUpdate" and s == 409]


def test_an_unregistered_container_instance_provider_fails_the_deploy_saying_how_to_register(
        world: AzureWorld) -> None:
    deploy(world)
    [old] = live_groups(world)
    world.azure.aci.registered = False
    record = deploy(world, {".env": "GREETING=x\n"})
    assert record.status is RunStatus.FAILED
    assert record.error["code"] == "provider_not_registered"  # type: ignore[index]
    assert "Microsoft.ContainerInstance" in record.error["message"]  # type: ignore[index]
    assert "az provider register --namespace Microsoft.ContainerInstance" in record.error["hint"]  # type: ignore[index]
    assert record.attempts == 1  # no retry can help
    world.azure.aci.registered = True
    assert live_groups(world) == [old]


def test_a_build_context_without_its_dockerfile_fails_the_run_and_says_so(world: AzureWorld) -> None:
    """ACR accepts the run; its build step fails. The deploy says why, and nothing else moves."""
    deploy(world)
    old = live_groups(world)
    acr = world.azure.acr
    uploads: dict = acr.uploads

    class WithoutDockerfile(dict):  # what reaches the registry lacks the Dockerfile
        def __setitem__(self, key: str, body: bytes) -> None:
            super().__setitem__(key, _without(body, "Dockerfile"))

    acr.uploads = WithoutDockerfile(uploads)
    record = deploy(world, {"requirements.txt": "prefect\nhttpx\n"})
    assert record.status is RunStatus.FAILED and record.error["code"] == "build_failed"  # type: ignore[index]
    assert "lstat /workspace/Dockerfile: no such file" in record.error["log_tail"]  # type: ignore[index]
    assert live_groups(world) == old


def _without(tar_gz_bytes: bytes, name: str) -> bytes:
    import io
    import tarfile

    from tests.builders import tar_gz

    with tarfile.open(fileobj=io.BytesIO(tar_gz_bytes), mode="r:gz") as tar:
        kept = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()  # type: ignore[union-attr]
                if m.isfile() and m.name.lstrip("./") != name]
    return tar_gz(kept)


def test_builds_take_prefects_base_image_from_the_registrys_cache_when_set() -> None:
    """DEPLOYER_BASE_IMAGE_REGISTRY becomes the Dockerfile's DEPLOYER_REGISTRY build argument, in
    the cached task and in the plain quick build alike (azd sets the app's own registry)."""
    import base64

    for cache in ("on", "off"):
        state = StateRepository(MemoryDocumentStore(), lease_seconds=15, lock_wait_seconds=1, sleep=lambda s: None)
        world = azure_world({**BASE, "DEPLOYER_BASE_IMAGE_REGISTRY": "fakeacr.azurecr.io",
                             "DEPLOYER_BUILD_CACHE": cache}, state, FakeBundleStore())
        assert deploy(world).status is RunStatus.SUCCEEDED
        [run] = world.azure.acr.runs.values()
        if cache == "on":
            task = base64.b64decode(run.request["encodedTaskContent"]).decode()
            assert "--build-arg DEPLOYER_REGISTRY=fakeacr.azurecr.io ." in task
        else:
            assert run.request["arguments"] == [{"name": "DEPLOYER_REGISTRY", "value": "fakeacr.azurecr.io",
                                                 "isSecret": False}]


def test_a_key_vault_reference_reaches_the_agent_only_as_a_secure_value(world: AzureWorld) -> None:
    """Read with the app's identity from Key Vault (its published contract, challenge auth), the
    pinned version only, and put in the container group as a secureValue: never a plain value,
    never in a state document."""
    from deployer.pipeline.intake import accept_bundle
    from tests.builders import module_tar

    version = world.azure.keyvault.set("kv-demo", "api-token", "kv-secret-value-123")
    bundles: FakeBundleStore = world.services.bundles  # type: ignore[assignment]
    bundles.put("demo/kv.tar.gz", module_tar("demo", changes={
        ".env": "API_TOKEN=@Microsoft.KeyVault(VaultName=kv-demo;SecretName=api-token)\n"}))
    queued = accept_bundle(world.services, "demo/kv.tar.gz")
    assert queued.status is RunStatus.QUEUED, queued.error
    world.trigger.pump(until=lambda: world.services.state.run("demo", queued.request_id).value.status.finished)  # type: ignore[union-attr]
    record = world.services.state.run("demo", queued.request_id).value  # type: ignore[union-attr]
    assert record.status is RunStatus.SUCCEEDED, record.error
    [body] = put_bodies(world)
    env = {e["name"]: e for e in body["properties"]["containers"][0]["properties"]["environmentVariables"]}
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "secureValue": "kv-secret-value-123"}
    assert ("kv-demo.vault.azure.net", "api-token", version) in world.azure.keyvault.reads
    stored = b"".join(d.body for d in world.services.state.docs._docs.values())  # type: ignore[attr-defined]
    assert b"kv-secret-value-123" not in stored and version.encode() in stored  # the pin, not the value


def test_a_rebuild_of_a_deployed_module_does_not_redeploy_its_build_cache_or_its_own_image(world: AzureWorld) -> None:
    """With cache: enabled, ACR's build agent pushes BuildKit's cache (cache_quickrun_build) into
    the module's repository next to the image, and the scope-less webhook delivers both pushes:
    neither may become a redeploy (one of a non-runnable cache index would fail its health
    ladder after 600 s, roll back and notify a failure)."""
    first = deploy(world)
    world.deliver_pushes()  # the first build's pushes
    second = deploy(world, {"requirements.txt": "prefect>=3.4,<4\nsix\n"})
    assert first.status is second.status is RunStatus.SUCCEEDED
    tags = {t for m in world.azure.acr.repositories["prefect-flows/demo"].values() for t in m.tags}
    assert "cache_quickrun_build" in tags  # the registry's own push, as acr-builder makes it
    replies = world.deliver_pushes()
    assert len(replies) == 2 and all(r.status == 200 and not r.body["accepted"] for r in replies)
    reasons = [r.body["ignored"][0]["reason"] for r in replies]
    assert any("build cache" in reason for reason in reasons), reasons
    assert [r.kind for r in world.services.state.runs("demo")] == [RequestKind.DEPLOY, RequestKind.DEPLOY]


def test_the_cleanup_keeps_the_build_cache_and_never_counts_it_among_the_revisions(world: AzureWorld) -> None:
    from dataclasses import replace

    from deployer.pipeline.cleanup import run_cleanup

    world.services.settings = replace(world.services.settings, keep_revisions=1, rollback_window_days=0)
    for n in range(3):
        deploy(world, {"requirements.txt": f"prefect>=3.4,<4\nsix=={n}.0\n"})
    world.azure.clock.advance(3 * 86400)
    report = run_cleanup(world.services)
    cache = [i for i in report.items if i.kind == "manifest" and "build cache" in i.reason]
    assert len(cache) == 1 and cache[0].outcome == "kept"
    assert not [i for i in report.items if i.kind == "tag" and i.target.startswith("cache_")]
    tags = {t for m in world.azure.acr.repositories["prefect-flows/demo"].values() for t in m.tags}
    assert "cache_quickrun_build" in tags


def test_the_agents_group_has_the_size_the_module_asks_for(world: AzureWorld) -> None:
    """prefect.yaml's sizes reach ACI: the agent fits its biggest deployment and its worker, a
    declared agent size is the group's, and a change of size starts a new group."""
    def sized(job_variables: str, top: str = "") -> dict[str, str | bytes | None]:
        return {"prefect.yaml": f"name: demo\n{top}deployments:\n  - name: hello\n"
                                "    entrypoint: flow.py:hello\n"
                                f"    work_pool:\n      job_variables: {{{job_variables}}}\n"}

    first = deploy(world, sized("cpu: 2, memory: 3.5"))
    assert first.status is RunStatus.SUCCEEDED, first.error
    second = deploy(world, sized("memory: 3.5", top="deployer:\n  agent: {cpu: 0.5, memory: 4}\n"))
    assert second.status is RunStatus.SUCCEEDED, second.error
    bodies = put_bodies(world)
    assert [b["properties"]["containers"][0]["properties"]["resources"] for b in bodies] == [
        {"requests": {"cpu": 2.0, "memoryInGB": 4.0}}, {"requests": {"cpu": 0.5, "memoryInGB": 4.0}}]


def test_an_agents_worker_fetches_scheduled_runs_a_poll_ahead(world: AzureWorld) -> None:
    """A longer poll (fewer idle requests) never makes a scheduled run late: runs are fetched
    the poll plus 10 s ahead; the worker's heartbeat is the setting's. Plain values: no secret."""
    record = deploy(world)
    assert record.status is RunStatus.SUCCEEDED, record.error
    [body] = put_bodies(world)
    env = {e["name"]: e for e in body["properties"]["containers"][0]["properties"]["environmentVariables"]}
    settings = world.services.settings
    assert env["PREFECT_WORKER_QUERY_SECONDS"] == {"name": "PREFECT_WORKER_QUERY_SECONDS",
                                                   "value": str(settings.worker_poll_seconds)}
    assert env["PREFECT_WORKER_PREFETCH_SECONDS"]["value"] == str(settings.worker_poll_seconds + 10)
    assert env["PREFECT_WORKER_HEARTBEAT_SECONDS"]["value"] == str(settings.worker_heartbeat_seconds)


PER_RUN = {"flow.py": "from prefect import flow\n\n\n@flow(name='demo')\ndef hello() -> None: ...\n\n\n"
                      "@flow(name='demo-big')\ndef big() -> None: ...\n",
           "prefect.yaml": "name: demo\ndeployer:\n  isolation: run\ndeployments:\n"
                           "  - name: hello\n    entrypoint: flow.py:hello\n"
                           "    work_pool:\n      job_variables: {memory: 0.5}\n"
                           "  - name: big\n    entrypoint: flow.py:big\n"
                           "    work_pool:\n      job_variables: {cpu: 2, memory: 8}\n"}


def test_each_run_of_a_run_isolated_module_gets_its_own_group_sized_by_its_deployment(
        world: AzureWorld, caplog: pytest.LogCaptureFixture) -> None:
    """isolation: run on ACI: the revision is proven in a group of its own (removed after), no
    agent group; each run gets a group (restart Never) of its deployment's CPU and memory, the
    .env and Prefect's key as secure values only, made straight through the ACI API (no ARM
    deployment: a resource group's 800-entry history never fills). Ended groups are deleted;
    a run whose group ended before it did is crashed saying so."""
    from deployer.models import PER_RUN_QUEUE
    from deployer.pipeline.per_run import tick

    caplog.set_level(logging.DEBUG)
    record = deploy(world, PER_RUN)
    assert record.status is RunStatus.SUCCEEDED, record.error
    [check] = put_bodies(world)
    assert check["properties"]["restartPolicy"] == "Never" and check["tags"]["role"] == "check"
    world.azure.clock.advance(60)
    assert live_groups(world) == []  # no agent, and the check's group is gone
    revision = world.services.state.module("demo").value.current.id  # type: ignore[union-attr]
    small = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
    big = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="big", version=revision)
    assert sorted(tick(world.services).started) == sorted([small.id, big.id])
    runs = {b["tags"]["flow-run"]: b for b in put_bodies(world)[1:]}
    assert set(runs) == {small.id, big.id}
    for run_id, cpu, memory in ((small.id, 1.0, 0.5), (big.id, 2.0, 8.0)):  # cpu 1: the default
        body = runs[run_id]
        assert body["properties"]["restartPolicy"] == "Never" and body["tags"]["role"] == "run"
        [container] = body["properties"]["containers"]
        props = container["properties"]
        assert props["resources"] == {"requests": {"cpu": cpu, "memoryInGB": memory}}
        assert props["command"][-3:] == ["python", "-m", "prefect.engine"]
        env = {e["name"]: e for e in props["environmentVariables"]}
        assert env["PREFECT__FLOW_RUN_ID"] == {"name": "PREFECT__FLOW_RUN_ID", "value": run_id}
        assert set(env["API_TOKEN"]) == {"name", "secureValue"}
        assert set(env["PREFECT_API_KEY"]) == {"name", "secureValue"}
        assert not any(e.get("value") in SECRETS for e in env.values())
    assert not any(secret in caplog.text for secret in SECRETS)
    assert {kind for kind, *_ in world.azure.log if kind.startswith(("ContainerGroups", "Containers_", "aci"))} <= {
        "ContainerGroups_CreateOrUpdate", "ContainerGroups_Get", "ContainerGroups_ListByResourceGroup",
        "ContainerGroups_Delete", "Containers_ListLogs"}
    # the small run completes and its group exits; the big one's group ends while it runs
    world.orchestrator.runs[small.id].state = "COMPLETED"
    world.azure.aci.exit_codes[next(n for (_, n), g in world.azure.aci.groups.items()
                                    if g.body["tags"].get("flow-run") == big.id)] = 137
    world.azure.clock.advance(world.azure.aci.provision_seconds + world.azure.aci.ends_after_seconds)
    report = tick(world.services)
    assert report.crashed == [big.id] and len(report.removed) == 2
    assert world.orchestrator.runs[small.id].state == "COMPLETED"
    assert "its container ended before the run did" in world.orchestrator.runs[big.id].message
    assert "exit code 137" in world.orchestrator.runs[big.id].message
    world.azure.clock.advance(60)
    assert live_groups(world) == []


def test_a_thousand_runs_later_runs_still_get_their_groups(world: AzureWorld) -> None:
    """No ARM deployment per run (prefect-azure's ACI worker makes one, and a resource group
    keeps at most 800): the 1001st run gets its group like the first."""
    from deployer.models import PER_RUN_QUEUE
    from deployer.pipeline.per_run import tick

    assert deploy(world, PER_RUN).status is RunStatus.SUCCEEDED
    revision = world.services.state.module("demo").value.current.id  # type: ignore[union-attr]
    started = 0
    for _ in range(21):
        for _ in range(50):
            run = world.orchestrator.add_run(PER_RUN_QUEUE, "SCHEDULED", deployment="hello", version=revision)
            run.final_state = "COMPLETED"
        started += len(tick(world.services).started)
        for run in world.orchestrator.runs.values():
            if run.state in ("PENDING", "RUNNING"):
                run.state = "COMPLETED"
        world.azure.clock.advance(world.azure.aci.provision_seconds + world.azure.aci.ends_after_seconds)
        tick(world.services)  # the ended groups go
        world.azure.clock.advance(60)
    assert started == 1050
    assert len(put_bodies(world)) == 1051 and live_groups(world) == []
