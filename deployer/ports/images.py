"""Images: building a revision's image and finding, listing and deleting images in the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Image:
    """A revision's image: where it is (``ref``) and where its code lives inside it."""

    ref: str
    working_dir: str
    digest: str = ""

    def pull_steps(self) -> list[dict[str, Any]]:
        """A flow run's pull steps when its code is the one baked into this image."""
        return [{"prefect.deployments.steps.set_working_directory": {"directory": self.working_dir}}]


class BuildState(StrEnum):
    RUNNING = "running"  # queued or building
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class BuildProgress:
    state: BuildState
    image: Image | None = None  # when it succeeded
    detail: str = ""  # the builder's own status, for people
    log_tail: str = ""  # when it failed: the end of the build log
    hint: str = ""  # when it failed: what to do next


class ImageBuilder(Protocol):
    #: how long a build usually takes: the pipeline's first look at a build comes after a
    #: fraction of it, later looks back off from there
    expected_build_seconds: float

    def find(self, module: str, code_digest: str) -> Image | None:
        """The image already built for this code, if the registry still has it."""
        ...

    def start_build(self, module: str, code_digest: str, source: Path) -> str:
        """Start building the module folder ``source`` (``.env`` is never part of the build) and
        return the build's id at once; the build goes on without this process."""
        ...

    def build_status(self, module: str, code_digest: str, build_id: str) -> BuildProgress:
        """One look at a build started by ``start_build`` (in this or an earlier process)."""
        ...

    def resolve(self, module: str, reference: str) -> Image | None:
        """The image a reference names, pinned to its digest where the registry has one:
        an ``Image.ref`` recorded earlier, or ``repository[:tag][@digest]`` from a push event.
        None when the registry no longer has it."""
        ...

    def image_modules(self) -> list[str]:
        """Modules that have images in the registry (repositories under our prefix)."""
        ...

    def manifests(self, module: str) -> list[ManifestInfo]: ...

    def delete_tag(self, module: str, tag: str) -> None: ...

    def delete_manifest(self, module: str, digest: str) -> None: ...


@dataclass(frozen=True)
class ManifestInfo:
    """One image in a module's repository: its digest, the tags on it, when it was pushed."""

    module: str
    digest: str
    tags: tuple[str, ...]
    created_at: datetime


#: the tag ACR Tasks gives the BuildKit cache a build step with ``cache: enabled`` pushes into the
#: repository of its first ``-t`` image: ``cache_<task>_<step id>`` (``cache_quickrun_build`` for
#: the deployer's builds; Azure/acr-builder ``GetBuildCacheImageTag``). It is no image to run: a
#: push of it redeploys nothing, and the cleanup keeps it (it is what makes the next build fast).
BUILD_CACHE_TAG = re.compile(r"^cache_[^_]+_.+$")


def is_build_cache(tag: str) -> bool:
    return bool(BUILD_CACHE_TAG.match(tag))
