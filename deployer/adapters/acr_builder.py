"""``ImageBuilder`` on Azure Container Registry: ACR Tasks builds, the registry data plane.

Why azure-mgmt-containerregistry 14.x and API 2025-03-01-preview: version 15 of the package
dropped the Tasks operations (``schedule_run``, ``get_build_source_upload_url``, ``runs``); 14.x
keeps them in versioned namespaces, and the stable-package route beats the pre-release
``azure-mgmt-containerregistrytasks``. Of the Tasks API versions, 2025-03-01-preview answers
``scheduleRun`` synchronously with the run (2019-06-01-preview makes it a long-running operation
whose run id only arrives when polling ends), so the run id is checkpointed the moment the run
exists and a restarted execution resumes polling that same run instead of building again.

Images are ``<login server>/<DEPLOYER_IMAGE_REPOSITORY>/<module>:<digest 12>`` (the digest of
the revision's dependencies when its flow runs pull code from the code store, else of its code);
the build context is the bundle without ``.env`` (packed deterministically), the Dockerfile the
module's.

Why a task definition with ``cache: enabled`` for the layer cache, not BuildKit's registry cache:
ACR Tasks keep no layers between quick builds (Azure/acr#204). Its own answer is a multi-step
task whose build step says ``cache: enabled``: ACR runs that step with BuildKit and keeps the
cache itself, with nothing for us to bootstrap or store. The other route, ``docker buildx
--cache-to type=registry``, needs a buildx image pushed first and fails on the Tasks agents'
default docker driver ("cache export is not supported for the docker driver", Azure/acr#351 and
#775, where the maintainers point to ``cache: enabled``). Expected gain when only the module's
own files change (the dependency layers hit the cache): 2.3-8.9x, 5-9x on the larger projects,
measured by the ACR team in Azure/acr#230 (oras 2m48s -> 25s, moby 15m34s -> 1m45s, azure-cli
7m33s -> 1m15s). ``DEPLOYER_BUILD_CACHE=off`` falls back to a plain quick build
(``DockerBuildRequest``), e.g. for a private base image, which the cached step has failed to
pull (Azure/acr#567).
A build is started (``start_build``: upload the context, schedule the run) and then looked at
(``build_status``: one ``runs.get``); the pipeline waits between looks, never this adapter.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from deployer.adapters.azure_clients import AzureClients
from deployer.adapters.azure_errors import azure_errors
from deployer.bundle import BundleLimits, pack, short
from deployer.bundle.envfile import is_env_file
from deployer.bundle.tree import scan
from deployer.ports.images import BuildProgress, BuildState, Image, ManifestInfo

logger = logging.getLogger(__name__)
FINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}
LOG_TAIL_LINES = 40
WORKING_DIR = "/opt/prefect/flows/{module}"
#: the build argument a Dockerfile names its base image's registry with (DEPLOYER_BASE_IMAGE_REGISTRY)
BASE_ARG = "DEPLOYER_REGISTRY"


class AcrImageBuilder:
    #: ACR Tasks builds of a flow image take 1-10 minutes (no layer cache between runs)
    expected_build_seconds = 120.0

    def __init__(self, clients: AzureClients) -> None:
        self._c = clients
        self._s = clients.settings

    def repository(self, module: str) -> str:
        return f"{self._s.image_repository}/{module}"

    def _image(self, module: str, tag: str, digest: str) -> Image:
        return Image(ref=f"{self._s.registry_server}/{self.repository(module)}:{tag}",
                     working_dir=WORKING_DIR.format(module=module), digest=digest)

    def find(self, module: str, code_digest: str) -> Image | None:
        tag = short(code_digest)
        with azure_errors(f"read tag {self.repository(module)}:{tag} in {self._s.registry}"):
            try:
                props = self._c.registry.get_tag_properties(self.repository(module), tag)
            except ResourceNotFoundError:
                return None
        return self._image(module, tag, props.digest)

    def resolve(self, module: str, reference: str) -> Image | None:
        """``[<login server>/]<repository>[:<tag>][@<digest>]``, pinned to its digest."""
        ref = reference.removeprefix(f"{self._s.registry_server}/")
        name, _, digest = ref.partition("@")
        repository, _, tag = name.rpartition(":") if ":" in name else (name, "", "")
        if repository != self.repository(module):
            return None
        with azure_errors(f"read image {ref} in {self._s.registry}"):
            try:
                if digest:
                    props = self._c.registry.get_manifest_properties(repository, digest)
                else:
                    props = self._c.registry.get_tag_properties(repository, tag)
            except ResourceNotFoundError:
                return None
        return Image(ref=f"{self._s.registry_server}/{repository}@{props.digest}",
                     working_dir=WORKING_DIR.format(module=module), digest=props.digest)

    def image_modules(self) -> list[str]:
        prefix = f"{self._s.image_repository}/"
        with azure_errors(f"list repositories of {self._s.registry}"):
            names = list(self._c.registry.list_repository_names())
        return sorted(n[len(prefix):] for n in names if n.startswith(prefix))

    def manifests(self, module: str) -> list[ManifestInfo]:
        repository = self.repository(module)
        with azure_errors(f"list images of {repository}"):
            try:
                found = list(self._c.registry.list_manifest_properties(repository))
            except ResourceNotFoundError:
                return []
        return [ManifestInfo(module, m.digest, tuple(m.tags or ()), m.created_on) for m in found]

    def delete_tag(self, module: str, tag: str) -> None:
        with azure_errors(f"delete tag {self.repository(module)}:{tag}"):
            try:
                self._c.registry.delete_tag(self.repository(module), tag)
            except ResourceNotFoundError:
                pass

    def delete_manifest(self, module: str, digest: str) -> None:
        with azure_errors(f"delete image {self.repository(module)}@{digest}"):
            try:
                self._c.registry.delete_manifest(self.repository(module), digest)
            except ResourceNotFoundError:
                pass

    def start_build(self, module: str, code_digest: str, source: Path) -> str:
        return self._schedule(module, f"{self.repository(module)}:{short(code_digest)}", source)

    def build_status(self, module: str, code_digest: str, build_id: str) -> BuildProgress:
        tag = short(code_digest)
        image_name = f"{self.repository(module)}:{tag}"
        with azure_errors(f"read ACR run {build_id} of {module}"):
            run = self._c.acr.runs.get(self._s.registry_group, self._s.registry, build_id)
        if run.status not in FINAL:
            return BuildProgress(BuildState.RUNNING, detail=f"ACR run {build_id} is {run.status}")
        if run.status != "Succeeded":
            return BuildProgress(
                BuildState.FAILED, detail=f"ACR run {build_id} ended {run.status}",
                log_tail=self._log_tail(build_id),
                hint=f"az acr task logs --registry {self._s.registry} --run-id {build_id}; "
                "the running agent is untouched")
        digest = next((o.digest for o in run.output_images or []
                       if f"{o.repository}:{o.tag}" == image_name), "")
        return BuildProgress(BuildState.SUCCEEDED, self._image(module, tag, digest or ""))

    def _schedule(self, module: str, image_name: str, source: Path) -> str:

        registry, group = self._s.registry, self._s.registry_group
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as context:
            tree = scan(source, BundleLimits(max_bytes=1 << 40, max_entries=1 << 20))
            pack(tree, context, exclude={e.path for e in tree.files if is_env_file(e.path)})
            context.seek(0)
            with azure_errors(f"get a build source upload URL from registry {registry}"):
                upload = self._c.acr.registries.get_build_source_upload_url(group, registry)
            with azure_errors(f"upload the build context of {module}"):
                self._c.blob(upload.upload_url).upload_blob(context, overwrite=True)
        request = self._request(image_name, upload.relative_path)
        with azure_errors(f"schedule the build of {image_name} in registry {registry}"):
            run = self._c.acr.registries.schedule_run(group, registry, request)
        logger.info("acr.scheduled module=%s run=%s image=%s", module, run.run_id, image_name)
        return str(run.run_id)

    def _request(self, image_name: str, source_location: str) -> Any:
        from azure.mgmt.containerregistry.v2025_03_01_preview.models import (
            DockerBuildRequest,
            EncodedTaskRunRequest,
            PlatformProperties,
        )

        platform = PlatformProperties(os="Linux", architecture="amd64")
        timeout = self._s.build_timeout_seconds
        base = self._s.base_image_registry
        if not self._s.build_cache:
            from azure.mgmt.containerregistry.v2025_03_01_preview.models import Argument

            arguments = [Argument(name=BASE_ARG, value=base)] if base else None
            return DockerBuildRequest(image_names=[image_name], is_push_enabled=True,
                                      source_location=source_location, docker_file_path="Dockerfile",
                                      platform=platform, timeout=timeout, arguments=arguments)
        task = cached_build_task(image_name, timeout, base)
        return EncodedTaskRunRequest(
            encoded_task_content=base64.b64encode(task.encode()).decode(),
            source_location=source_location, platform=platform, timeout=timeout)

    def _log_tail(self, run_id: str) -> str:
        try:
            with azure_errors(f"read the log of ACR run {run_id}"):
                link = self._c.acr.runs.get_log_sas_url(self._s.registry_group, self._s.registry, run_id)
                text = self._c.blob(link.log_link).download_blob().readall().decode("utf-8", "replace")
        except Exception as exc:  # a missing log must not hide the build's own failure
            logger.warning("acr.log_unavailable run=%s error=%s", run_id, exc)
            return ""
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def cached_build_task(image_name: str, timeout: int, base_registry: str = "") -> str:
    """The ACR task (v1.1.0) that builds the module's Dockerfile with the layer cache and pushes
    ``image_name`` (``repository:tag``, pushed to the run's own registry); ``base_registry`` is
    passed as the Dockerfile's ``DEPLOYER_REGISTRY`` argument."""
    image = f"{{{{.Run.Registry}}}}/{image_name}"  # ACR renders it before it parses the YAML
    arg = f" --build-arg {BASE_ARG}={base_registry}" if base_registry else ""
    return (f"version: v1.1.0\nstepTimeout: {timeout}\nsteps:\n"
            f"  - id: build\n    build: -t {image} -f Dockerfile{arg} .\n    cache: enabled\n"
            f"  - id: push\n    push:\n      - \"{image}\"\n    when: [build]\n")
