"""The ports: what the use cases need from the outside world, in domain terms.

Adapters in ``deployer/adapters/`` implement them (Azure Storage, ACR, ACI, Prefect, local
processes); fakes in ``tests/fakes/`` implement them for unit tests and are kept honest by
contract tests that run the same cases against both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from deployer.bundle.prefect_yaml import DeploymentSpec


@dataclass(frozen=True)
class StoredDocument:
    body: bytes
    etag: str


class DocumentStore(Protocol):
    """Small JSON documents with optimistic concurrency, append-only logs and leases.

    ``create`` and ``replace`` raise ``StateConflict`` when they lose a race (the document exists /
    its etag moved on / it was deleted); nothing is ever overwritten unconditionally.
    """

    def get(self, key: str) -> StoredDocument | None: ...

    def create(self, key: str, body: bytes) -> str: ...

    def replace(self, key: str, body: bytes, etag: str) -> str: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def append(self, key: str, line: bytes) -> None: ...

    def read_log(self, key: str) -> bytes | None: ...

    def acquire_lease(self, key: str, seconds: int) -> str | None:
        """Lease id, or None while someone else holds it. Creates the lock blob if missing."""
        ...

    def renew_lease(self, key: str, lease_id: str) -> bool:
        """False when the lease is no longer ours (it expired and someone else took it)."""
        ...

    def release_lease(self, key: str, lease_id: str) -> None: ...


@dataclass(frozen=True)
class BundleInfo:
    name: str
    etag: str
    size: int
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)


class BundleStore(Protocol):
    """The bundles container: uploaded flow bundles (they hold ``.env``, so it is private)."""

    def upload(self, name: str, data: BinaryIO, metadata: dict[str, str]) -> BundleInfo: ...

    def open(self, name: str) -> tuple[BundleInfo, Iterator[bytes]]:
        """The blob's properties and its content as chunks, read as one consistent version."""
        ...

    def info(self, name: str) -> BundleInfo | None: ...

    def list(self, prefix: str = "") -> list[BundleInfo]: ...

    def delete(self, name: str) -> None: ...


class RequestQueue(Protocol):
    def send(self, body: bytes) -> None: ...


# -- images -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """A revision's image: where it is (``ref``) and where its code lives inside it."""

    ref: str
    working_dir: str
    digest: str = ""


class ImageBuilder(Protocol):
    def find(self, module: str, code_digest: str) -> Image | None:
        """The image already built for this code, if the registry still has it."""
        ...

    def build(self, module: str, code_digest: str, source: Path, *, resume: dict[str, Any],
              checkpoint: Callable[[dict[str, Any]], None]) -> Image:
        """Build from the module folder ``source``; ``.env`` is never part of the build.

        A remote build saves its progress (e.g. its run id) with ``checkpoint``; a restarted
        execution gets it back in ``resume`` and continues the same build instead of starting
        over. Raises ``BuildFailed`` with the tail of the build log."""
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


# -- agents -------------------------------------------------------------------------------------


class AgentState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"  # exited, terminated or being deleted
    FAILED = "failed"


@dataclass(frozen=True)
class AgentSpec:
    name: str
    module: str
    revision_id: str
    image: Image
    pool: str
    queue: str
    env: dict[str, str] = field(repr=False)  # .env values: secrets
    settings: dict[str, str] = field(default_factory=dict)  # non-secret agent settings

    def __repr__(self) -> str:
        return (f"AgentSpec(name={self.name!r}, revision={self.revision_id!r}, "
                f"queue={self.queue!r}, env_keys={sorted(self.env)!r})")


@dataclass(frozen=True)
class AgentInfo:
    name: str
    module: str
    revision_id: str
    queue: str
    state: AgentState
    started_at: datetime | None
    detail: str = ""  # pid / provisioning state, for people


class AgentRuntime(Protocol):
    def start(self, spec: AgentSpec) -> AgentInfo: ...

    def get(self, name: str) -> AgentInfo | None: ...

    def list(self, module: str | None = None, *, detailed: bool = True) -> list[AgentInfo]:
        """The agents (of ``module``). ``detailed=False`` may skip per-agent reads: the state is
        then only what a listing shows (provisioning state for ACI), enough for cleanup."""
        ...

    def stop(self, name: str) -> None:
        """Stop and remove the agent (graceful, then forced); a missing agent is not an error."""
        ...

    def logs(self, name: str, tail: int = 50) -> str: ...


# -- orchestrator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    id: str
    name: str
    state: str
    deployment: str = ""


class Orchestrator(Protocol):
    def ensure_pool(self, pool: str) -> None: ...

    def ensure_queue(self, pool: str, queue: str) -> None: ...

    def online_workers(self, pool: str) -> set[str]:
        """Names of the pool's workers that Prefect shows ONLINE."""
        ...

    def register(self, pool: str, queue: str, deployments: Sequence[DeploymentSpec],
                 working_dir: str, revision_id: str) -> list[str]:
        """Create or update the deployments on ``queue``; delete the pool's other deployments.
        Returns the names of deployments that were removed."""
        ...

    def pause_queue(self, pool: str, queue: str) -> None: ...

    def rehome_scheduled(self, pool: str, from_queue: str, to_queue: str) -> list[tuple[str, str]]:
        """Move runs not yet started from one queue to another; (old id, new id) pairs."""
        ...

    def in_flight(self, pool: str, queue: str) -> list[RunRef]: ...

    def mark_crashed(self, run_ids: Sequence[str], message: str) -> list[str]:
        """Mark runs that are still not final as crashed; returns the ids it changed."""
        ...

    def delete_queue(self, pool: str, queue: str) -> None: ...

    def queues(self, pool: str) -> dict[str, int]:
        """The pool's work queues and how many runs in each are not final yet."""
        ...

    def start_run(self, flow_name: str, deployment: str,
                  parameters: dict[str, Any] | None = None) -> RunRef:
        """A flow run of a deployment, now (``deployer run``, the demo)."""
        ...

    def run_status(self, run_id: str) -> RunRef: ...

    def run_artifacts(self, run_id: str) -> list[str]:
        """The run's markdown and table artifacts, as text."""
        ...
