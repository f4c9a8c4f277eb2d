"""Fake Azure Container Registry: ACR Tasks runs (2025-03-01-preview) that take simulated time,
the SAS storage that receives build contexts and serves run logs, and the registry data plane
(2021-07-01) with its AAD token exchange, tags and manifests."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from tests.fakes.azure.http import Request, Response, SimClock
from tests.fakes.azure.swagger import spec

TASKS = "acr-tasks/2025-03-01-preview/containerregistry_build.json"
REGISTRY_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                           r"Microsoft\.ContainerRegistry/registries/(?P<registry>[^/]+)/(?P<rest>.+)$",
                           re.IGNORECASE)
IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
FINAL = ("Succeeded", "Failed", "Canceled", "Error", "Timeout")
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
#: a BuildKit registry cache (mode=max) is an OCI image index holding the cache config
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Run:
    run_id: str
    request: dict[str, Any]
    created: datetime
    fate: str  # succeeds | fails
    status: str = "Queued"
    context: dict[str, bytes] = field(default_factory=dict)  # the uploaded build context's files
    images: list[str] = field(default_factory=list)  # what the run pushes (repository:tag)
    cached: bool = False  # built with the layer cache
    #: what a cached build step pushes besides: BuildKit's cache, ``cache_<task>_<step id>`` in
    #: the repository of its first -t (Azure/acr-builder GetBuildCacheImageTag, --cache-to)
    cache_images: list[str] = field(default_factory=list)
    #: why the run fails, as its log says it (a failing requirement, unless the run found a
    #: reason of its own)
    failure: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    digest: str
    created: datetime
    tags: list[str] = field(default_factory=list)


@dataclass
class FakeAcr:
    clock: SimClock
    login_server: str = "fakeacr.azurecr.io"
    storage_host: str = "fakeacrstorage.blob.core.windows.net"
    build_seconds: float = 60.0
    #: decides a build's fate from its image names: "succeeds" or "fails"
    fate: Callable[[list[str]], str] = lambda images: "succeeds"
    runs: dict[str, Run] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)  # relative path -> uploaded bytes
    repositories: dict[str, dict[str, Manifest]] = field(default_factory=dict)  # repo -> digest -> manifest
    #: a push event (the ACR webhook's payload) for every push, as the registry sends one to its
    #: webhooks and Event Grid; ``pending_events`` hands them out once
    events: list[dict[str, Any]] = field(default_factory=list)
    #: (caller, action, resource, data action?) -> whether the caller's roles allow it
    allowed: Callable[..., bool] = lambda *args: True
    _delivered: int = 0
    _next_run: int = 0

    # -- ARM: ACR Tasks -----------------------------------------------------------------------

    def handle_arm(self, req: Request) -> tuple[str, Response] | None:
        match = REGISTRY_PATH.match(req.path)
        if match is None:
            return None
        op = spec(TASKS).find(req.method, req.path)
        if op is None:
            return f"acr:{req.method}", Response.arm_error(404, "NotFound", req.path)
        if req.query.get("api-version") != spec(TASKS).version:
            return op.operation_id, Response.arm_error(400, "InvalidApiVersionParameter",
                                                       f"api-version {req.query.get('api-version')!r}")
        rest = match["rest"]
        kind = op.operation_id
        if kind == "Registries_GetBuildSourceUploadUrl":
            relative = f"source/{self.clock.now():%Y%m%d%H%M}/{uuid.uuid4()}.tar.gz"
            return kind, Response.of_json(200, {"relativePath": relative,
                                                "uploadUrl": f"https://{self.storage_host}/build/{relative}?sv=2021&sig=fake"})
        if kind == "Registries_ScheduleRun":
            return kind, self._schedule(req, op, match)
        run_id = rest.split("/")[1]
        run = self.runs.get(run_id)
        if run is None:
            return kind, Response.arm_error(404, "ResourceNotFound", f"run {run_id} not found")
        if kind == "Runs_Get":
            return kind, Response.of_json(200, self._run_view(run, req.path))
        if kind == "Runs_GetLogSasUrl":
            return kind, Response.of_json(200, {"logLink": f"https://{self.storage_host}/logs/{run_id}/rawtext.log?sig=fake"})
        if kind == "Runs_Cancel":
            self._advance(run)
            if run.status not in FINAL:
                run.status = "Canceled"
            return kind, Response(200)
        return kind, Response.arm_error(405, "MethodNotAllowed", kind)

    def _schedule(self, req: Request, op: Any, match: re.Match[str]) -> Response:
        body = req.json()
        errors = spec(TASKS).validate(op, body)
        if not isinstance(body, dict) or errors:
            return Response.arm_error(400, "InvalidRequestContent", "; ".join(errors or ["not an object"]))
        caches: list[str] = []
        if body["type"] == "EncodedTaskRunRequest":
            images, dockerfile, cached, caches = self._task(body, errors)
        elif body["type"] == "DockerBuildRequest":
            images, dockerfile, cached = body.get("imageNames") or [], body.get("dockerFilePath"), False
        else:
            errors.append(f"type {body['type']!r}: this fake runs quick builds and encoded tasks only")
            images, dockerfile, cached = [], None, False
        errors += [f"image {name!r} is not repository:tag" for name in images if not IMAGE_NAME.match(name)]
        source = body.get("sourceLocation")
        if source not in self.uploads:
            errors.append(f"sourceLocation {source!r} was not uploaded through listBuildSourceUploadUrl")
        timeout = body.get("timeout", 3600) if isinstance(body, dict) else 0
        if not 300 <= timeout <= 28800:
            errors.append("timeout must be between 300 and 28800 seconds")
        if errors:
            return Response.arm_error(400, "InvalidRequestContent", "; ".join(errors))
        context = _untar(self.uploads[source])
        self._next_run += 1
        run_id = f"cb{self._next_run}"
        fate, failure = self.fate(images), []
        if dockerfile not in context:  # ACR accepts the run; the build step fails in it
            fate, failure = "fails", [
                f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                f"lstat /workspace/{dockerfile}: no such file or directory",
                f"Run ID: {run_id} failed after 4s"]
        run = Run(run_id, body, self.clock.now(), fate, context=context, images=images,
                  cached=cached, failure=failure, cache_images=caches)
        self.runs[run_id] = run
        return Response.of_json(200, self._run_view(run, f"{req.path.rsplit('/scheduleRun', 1)[0]}/runs/{run_id}"))

    def _task(self, body: dict[str, Any], errors: list[str]) -> tuple[list[str], str | None, bool, list[str]]:
        """The images a v1.1.0 task of build and push steps pushes, its Dockerfile, whether its
        build uses the layer cache, and the cache images its cached steps push; what it cannot
        run goes to ``errors`` (as ACR's own parser refuses a task before the run starts)."""
        import base64
        import binascii
        import shlex

        import yaml

        try:
            text = base64.b64decode(body["encodedTaskContent"], validate=True).decode()
            # ACR renders the task's template values first and parses the YAML after
            text = text.replace("{{.Run.Registry}}", self.login_server).replace("$Registry", self.login_server)
            unknown_values = re.findall(r"\{\{[^}]*\}\}", text)
            if unknown_values:
                errors.append(f"template values {unknown_values} are not set for this run")
            task = yaml.safe_load(text)
        except (binascii.Error, ValueError, yaml.YAMLError) as exc:
            errors.append(f"encodedTaskContent is not base64 of a YAML task: {exc}")
            return [], None, False, []
        if not isinstance(task, dict) or task.get("version") != "v1.1.0" or not isinstance(task.get("steps"), list):
            errors.append("the task must be a v1.1.0 task with a list of steps")
            return [], None, False, []
        unknown = set(task) - {"version", "stepTimeout", "steps", "workingDirectory", "env", "secrets",
                               "networks", "volumes", "alias"}
        errors += [f"task property {name!r} is not in the task schema" for name in sorted(unknown)]
        registry = f"{self.login_server}/"
        built: list[str] = []
        pushed: list[str] = []
        dockerfile: str | None = None
        cached = False
        caches: list[str] = []
        for index, step in enumerate(task["steps"]):
            kinds = [k for k in ("build", "push", "cmd") if isinstance(step, dict) and k in step]
            if len(kinds) != 1:
                errors.append(f"step {index}: exactly one of build, push, cmd")
                continue
            extra = set(step) - {kinds[0], "id", "when", "cache", "timeout", "env", "retries",
                                 "startDelay", "workingDirectory", "ignoreErrors"}
            errors += [f"step {index}: property {name!r} is not a step property" for name in sorted(extra)]
            if "cache" in step and (kinds[0] != "build" or step["cache"] not in ("enabled", "disabled")):
                errors.append(f"step {index}: cache is 'enabled' or 'disabled', on build steps only")
            if kinds[0] == "build":
                words = shlex.split(str(step["build"]))
                tags = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-t", "--tag")]
                files = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-f", "--file")]
                dockerfile = files[-1] if files else "Dockerfile"
                if not words or words[-1] != ".":
                    errors.append(f"step {index}: the build context must be the uploaded source ('.')")
                built += tags
                if step.get("cache") == "enabled" and tags and tags[0].startswith(registry):
                    cached = True  # a quick run's task is named "quickrun"
                    repository = tags[0][len(registry):].rsplit(":", 1)[0]
                    caches.append(f"{repository}:cache_quickrun_{step.get('id') or f'acb_step_{index}'}")
            elif kinds[0] == "push":
                images = step["push"] if isinstance(step["push"], list) else []
                errors += [f"step {index}: pushes {i!r}, which no build step tagged" for i in images if i not in built]
                pushed += images
            else:
                errors.append(f"step {index}: this fake runs no cmd steps")
        out = []
        for image in pushed:
            if not image.startswith(registry):
                errors.append(f"image {image!r} is not in the run's registry ({registry}...)")
            else:
                out.append(image[len(registry):])
        if not out:
            errors.append("the task pushes no image")
        return out, dockerfile, cached, caches

    def _advance(self, run: Run) -> None:
        if run.status in FINAL:
            return
        age = (self.clock.now() - run.created).total_seconds()
        if age < 2:
            run.status = "Queued"
        elif age < self.build_seconds:
            run.status = "Running"
        elif run.fate == "fails":
            run.status = "Failed"
        else:
            run.status = "Succeeded"
            for image in run.cache_images:  # exported while the step builds (--cache-to)
                repo, tag = image.rsplit(":", 1)
                self.push(repo, tag, hashlib.sha256(f"{run.run_id}{image}".encode()).hexdigest(),
                          media_type=OCI_INDEX)
            for image in run.images:
                repo, tag = image.rsplit(":", 1)
                self.push(repo, tag, hashlib.sha256(f"{run.run_id}{image}".encode()).hexdigest())

    def _run_view(self, run: Run, rid: str) -> dict[str, Any]:
        self._advance(run)
        props: dict[str, Any] = {"runId": run.run_id, "status": run.status, "provisioningState": "Succeeded",
                                 "runType": "QuickRun", "createTime": run.created.isoformat(),
                                 "platform": run.request.get("platform"),
                                 "lastUpdatedTime": self.clock.now().isoformat()}
        if run.status == "Succeeded":
            props["outputImages"] = [
                {"registry": self.login_server, "repository": image.rsplit(":", 1)[0],
                 "tag": image.rsplit(":", 1)[1], "digest": self.digest_of(*image.rsplit(":", 1))}
                for image in run.images]
        return {"id": rid, "name": run.run_id, "type": "Microsoft.ContainerRegistry/registries/runs",
                "properties": props}

    def run_log(self, run_id: str) -> str:
        run = self.runs[run_id]
        lines = [f"2026/11/28 06:00:0{i} Step {i}/5 : ..." for i in range(1, 4)]
        if run.status == "Failed" and run.failure:
            lines += run.failure
        elif run.status == "Failed":
            lines += ["ERROR: Could not find a version that satisfies the requirement nope==0",
                      "The command '/bin/sh -c pip install -r requirements.txt' returned a non-zero code: 1",
                      f"Run ID: {run_id} failed after 1m"]
        return "\n".join(lines)

    # -- SAS storage for build contexts and logs ------------------------------------------------

    def handle_storage(self, req: Request) -> tuple[str, Response] | None:
        if req.host != self.storage_host:
            return None
        if req.path.startswith("/build/") and req.method == "PUT":
            if req.headers.get("x-ms-blob-type") != "BlockBlob" or "comp" in req.query:
                return "storage:PutBlob", Response(400, b"only single-shot block blob uploads")
            self.uploads[req.path[len("/build/"):]] = req.body
            return "storage:PutBlob", Response(201, headers={"ETag": '"0x1"', "Last-Modified":
                                                             "Sat, 28 Nov 2026 06:00:00 GMT"})
        match = re.match(r"^/logs/(?P<run>[^/]+)/rawtext\.log$", req.path)
        if match and req.method in ("GET", "HEAD"):
            data = self.run_log(match["run"]).encode()
            return "storage:GetBlob", Response(200, data, {
                "Content-Type": "text/plain", "Content-Length": str(len(data)), "ETag": '"0x2"',
                "x-ms-blob-type": "BlockBlob", "Last-Modified": "Sat, 28 Nov 2026 06:00:00 GMT",
                "Content-Range": f"bytes 0-{max(len(data) - 1, 0)}/{len(data)}"})
        return "storage:other", Response(404)

    # -- registry data plane ----------------------------------------------------------------------

    def push(self, repo: str, tag: str, digest_hex: str | None = None, *,
             media_type: str = DOCKER_MANIFEST) -> str:
        digest = "sha256:" + (digest_hex or hashlib.sha256(f"{repo}:{tag}:{self.clock.now()}".encode()).hexdigest())
        manifests = self.repositories.setdefault(repo, {})
        for manifest in manifests.values():
            if tag in manifest.tags:
                manifest.tags.remove(tag)
        manifests.setdefault(digest, Manifest(digest, self.clock.now())).tags.append(tag)
        self.events.append({  # the webhook payload's shape (tests/data/webhooks/acr_push.json)
            "id": str(uuid.uuid4()), "timestamp": self.clock.now().isoformat().replace("+00:00", "Z"),
            "action": "push", "target": {"mediaType": media_type, "size": 708, "digest": digest,
                                         "length": 708, "repository": repo, "tag": tag},
            "request": {"id": str(uuid.uuid4()), "host": self.login_server, "method": "PUT",
                        "useragent": "buildkit/v0.13 acr-builder"}})
        return digest

    def pending_events(self) -> list[dict[str, Any]]:
        """The push events not handed out yet (what the registry's webhook would deliver next)."""
        out = self.events[self._delivered:]
        self._delivered = len(self.events)
        return out

    def digest_of(self, repo: str, tag: str) -> str | None:
        for manifest in self.repositories.get(repo, {}).values():
            if tag in manifest.tags:
                return manifest.digest
        return None

    def handle_registry(self, req: Request) -> tuple[str, Response] | None:
        if req.host != self.login_server:
            return None
        if req.path == "/oauth2/exchange" and req.method == "POST":
            form = req.form()
            if form.get("grant_type") != "access_token" or not form.get("access_token"):
                return "acr:exchange", Response.of_json(400, {"errors": [{"code": "UNSUPPORTED"}]})
            principal = form["access_token"].removeprefix("fake-aad-token.")
            return "acr:exchange", Response.of_json(200, {"refresh_token": f"fake-refresh.{principal}"})
        if req.path == "/oauth2/token" and req.method == "POST":
            form = req.form()
            if not form.get("refresh_token", "").startswith("fake-refresh."):
                return "acr:token", Response.of_json(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            principal = form["refresh_token"].removeprefix("fake-refresh.")
            return "acr:token", Response.of_json(200, {"access_token": f"fake-acr-access.{principal}"})
        if not req.headers.get("authorization", "").startswith("Bearer fake-acr-access."):
            return "acr:challenge", Response(401, b"", {
                "WWW-Authenticate": f'Bearer realm="https://{self.login_server}/oauth2/token",'
                                    f'service="{self.login_server}",scope="registry:catalog:*"'})
        if req.query.get("api-version", "2021-07-01") != "2021-07-01":
            return "acr:version", Response.of_json(400, {"errors": [{"code": "UNSUPPORTED"}]})
        principal = req.headers["authorization"].removeprefix("Bearer fake-acr-access.")
        # RBAC registry permissions (the registry's default mode): reads need pull/read, a
        # deletion of a tag or manifest artifacts/delete (AcrDelete; AcrPush cannot delete)
        action = "Microsoft.ContainerRegistry/registries/" + (
            "artifacts/delete" if req.method == "DELETE" else "pull/read")
        if not self.allowed(principal, action, "registry"):
            return f"acr:denied:{req.method}", Response.of_json(403, {"errors": [{
                "code": "DENIED", "message": f"requested access to the resource is denied "
                f"({principal} may not {action.rsplit('/', 2)[-2]}: no role grants {action})"}]})
        path = unquote(req.path)  # repository names travel %2F-encoded
        if path == "/acr/v1/_catalog" and req.method == "GET":
            return "ContainerRegistry_GetRepositories", Response.of_json(
                200, {"repositories": sorted(r for r, m in self.repositories.items() if m)})
        tag = re.match(r"^/acr/v1/(?P<repo>.+)/_tags/(?P<tag>[^/]+)$", path)
        if tag:
            return self._tag(req, tag["repo"], tag["tag"])
        tags = re.match(r"^/acr/v1/(?P<repo>.+)/_tags$", path)
        if tags and req.method == "GET":
            return "ContainerRegistry_GetTags", self._tags(tags["repo"])
        manifests = re.match(r"^/acr/v1/(?P<repo>.+)/_manifests$", path)
        if manifests and req.method == "GET":
            return "ContainerRegistry_GetManifests", self._manifests(manifests["repo"])
        manifest = re.match(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>sha256:[0-9a-f]+)$", path)
        if manifest and req.method == "DELETE":
            removed = self.repositories.get(manifest["repo"], {}).pop(manifest["ref"], None)
            return "ContainerRegistry_DeleteManifest", Response(202 if removed else 404)
        return "acr:other", Response.of_json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})

    def _tag(self, req: Request, repo: str, tag: str) -> tuple[str, Response]:
        for manifest in self.repositories.get(repo, {}).values():
            if tag in manifest.tags:
                if req.method == "DELETE":
                    manifest.tags.remove(tag)
                    return "ContainerRegistry_DeleteTag", Response(202)
                return "ContainerRegistry_GetTagProperties", Response.of_json(200, {
                    "registry": self.login_server, "imageName": repo,
                    "tag": {"name": tag, "digest": manifest.digest, "createdTime": manifest.created.isoformat(),
                            "lastUpdateTime": manifest.created.isoformat(), "signed": False,
                            "changeableAttributes": _attrs()}})
        kind = "ContainerRegistry_DeleteTag" if req.method == "DELETE" else "ContainerRegistry_GetTagProperties"
        return kind, Response.of_json(404, {"errors": [{"code": "TAG_UNKNOWN", "message": "the specified tag does not exist"}]})

    def _tags(self, repo: str) -> Response:
        manifests = self.repositories.get(repo)
        if manifests is None:
            return Response.of_json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
        tags = [{"name": t, "digest": m.digest, "createdTime": m.created.isoformat(),
                 "lastUpdateTime": m.created.isoformat(), "signed": False, "changeableAttributes": _attrs()}
                for m in manifests.values() for t in m.tags]
        return Response.of_json(200, {"registry": self.login_server, "imageName": repo, "tags": tags})

    def _manifests(self, repo: str) -> Response:
        manifests = self.repositories.get(repo)
        if manifests is None:
            return Response.of_json(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
        items = [{"digest": m.digest, "imageSize": 1024, "createdTime": m.created.isoformat(),
                  "lastUpdateTime": m.created.isoformat(), "architecture": "amd64", "os": "linux",
                  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                  "tags": list(m.tags), "changeableAttributes": _attrs()} for m in manifests.values()]
        return Response.of_json(200, {"registry": self.login_server, "imageName": repo, "manifests": items})


def _attrs() -> dict[str, bool]:
    return {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}


def _untar(data: bytes) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    except (OSError, tarfile.TarError):
        return {}
