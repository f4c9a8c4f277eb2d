"""The ports: what the use cases need from the outside world, in domain terms.

Adapters in ``deployer/adapters/`` implement them (Azure Storage, ACR, ACI, Prefect, local
processes); fakes in ``tests/fakes/`` implement them for unit tests and are kept honest by
contract tests that run the same cases against both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from deployer.bundle.keyvault_ref import SecretRef
from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.errors import Problem

if TYPE_CHECKING:
    from deployer.bundle import BundleLimits
    from deployer.config import Settings
    from deployer.notices import Notifier
    from deployer.state import StateRepository


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
    def send(self, body: bytes, *, delay_seconds: int = 0) -> None:
        """Enqueue ``body``; it becomes visible to the queue trigger after ``delay_seconds``."""
        ...


class DeploymentChecker(Protocol):
    """What only the orchestrator can say about a module's deployments without network: that
    every schedule (cron, interval, rrule, time zone) is one its own models accept."""

    def check(self, module: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]: ...


# -- images -------------------------------------------------------------------------------------


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


# -- code ---------------------------------------------------------------------------------------


class CodeStore(Protocol):
    """Content-addressed code of revisions, pulled by each flow run at its start (the
    deployments' pull steps), so that a code-only change needs no image and no new agent."""

    def requirement(self, requirements: bytes) -> str | None:
        """What an image needs so that flow runs can pull code from this store: None when
        ``requirements`` provide it, else a note saying what to add (the change then deploys
        the slow way)."""
        ...

    def publish(self, module: str, code_digest: str, source: Path) -> bool:
        """Store the module folder ``source`` (``.env`` never) as this code, with the deployer's
        check flow (``preflight.CHECK_FLOW``) and the code's manifest (``bundle.manifest``).
        A stored copy that verifies is kept (False); anything else there is replaced (True)."""
        ...

    def verify(self, module: str, code_digest: str) -> list[str]:
        """What is wrong with the stored copy (missing, incomplete, a file altered or added),
        as a flow run's verification step would find it; nothing when it is that code."""
        ...

    def exists(self, module: str, code_digest: str) -> bool: ...

    def pull_steps(self, module: str, code_digest: str, revision_id: str) -> list[dict[str, Any]]:
        """The deployment pull steps that fetch this code into a run's working directory and
        verify it against the digest before the flow is loaded (a mismatch fails the run,
        naming the module, ``revision_id`` and the file). They carry no secret: the agent
        fetches with its own identity."""
        ...

    def codes(self, module: str) -> list[str]:
        """The codes stored for the module, by short digest (``digest.short``)."""
        ...

    def delete(self, module: str, code_digest: str) -> None:
        """Remove a code (by full or short digest); a code already gone is no error."""
        ...


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
    #: (deployment, entrypoint) pairs the agent loads before its worker starts (``preflight``)
    entrypoints: tuple[tuple[str, str], ...] = ()
    #: the pull steps the preflight runs first, when flow runs pull their code (code store)
    pull_steps: tuple[dict[str, Any], ...] = ()
    #: the image's own ENTRYPOINT, put back in front of the command (``bundle.entrypoint``)
    entrypoint: tuple[str, ...] = ()

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
    #: how long a new agent usually takes until its worker is ONLINE (paces the looks)
    expected_start_seconds: float

    def start(self, spec: AgentSpec) -> AgentInfo:
        """Start the agent without waiting for it; starting one that already exists (same name)
        returns it instead of starting a second."""
        ...

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
    version: str = ""  # the deployment version the run ran (the deployer's revision id)
    message: str = ""  # its state's message (why it failed)


@dataclass(frozen=True)
class Readiness:
    queue: str  # READY | NOT_READY | PAUSED | missing
    deployments: dict[str, str]  # deployment name -> READY | NOT_READY | missing | elsewhere

    @property
    def ready(self) -> bool:
        return self.queue == "READY" and all(s == "READY" for s in self.deployments.values())


#: the tag of the flow runs the deployer itself starts to check a revision (smoke runs)
SMOKE_TAG = "deployer-smoke"


class Orchestrator(Protocol):
    def ensure_pool(self, pool: str) -> None: ...

    def ensure_queue(self, pool: str, queue: str) -> None: ...

    def online_workers(self, pool: str) -> set[str]:
        """Names of the pool's workers that Prefect shows ONLINE."""
        ...

    def conflicts(self, pool: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]:
        """Deployments whose Prefect name (``flow/deployment``) another pool already owns."""
        ...

    def register(self, pool: str, queue: str, deployments: Sequence[DeploymentSpec],
                 pull_steps: Sequence[dict[str, Any]], revision_id: str) -> list[str]:
        """Create or update the deployments on ``queue``, each run pulling its code with
        ``pull_steps``, versioned ``revision_id``; delete the pool's other deployer-made
        deployments. Returns the names of deployments that were removed."""
        ...

    def start_code_check(self, pool: str, queue: str, pull_steps: Sequence[dict[str, Any]],
                         entrypoints: Sequence[tuple[str, str]], *,
                         idempotency_key: str) -> RunRef:
        """A run of the deployer's check flow (``preflight.CHECK_FLOW``) on ``queue``, pulling
        code with ``pull_steps``: it loads ``entrypoints`` where the serving agent runs."""
        ...

    def finish_code_check(self, pool: str) -> None:
        """Remove what ``start_code_check`` registered."""
        ...

    def pause_queue(self, pool: str, queue: str) -> None: ...

    def resume_queue(self, pool: str, queue: str) -> None: ...

    def readiness(self, pool: str, queue: str,
                  deployments: Sequence[DeploymentSpec]) -> Readiness:
        """What Prefect reports of a queue and of deployments registered on it."""
        ...

    def finished_runs(self, pool: str, queue: str, since: datetime,
                      limit: int = 50) -> list[RunRef]:
        """Runs of the queue that started after ``since`` and are final now, newest first
        (the deployer's own smoke runs left out)."""
        ...

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

    def versions(self, pool: str) -> dict[str, str]:
        """The pool's deployments (``flow/name``) and the revision each is registered at (its
        ``version``; "" when it has none): what their next runs pull."""
        ...

    def start_run(self, flow_name: str, deployment: str,
                  parameters: dict[str, Any] | None = None, *, idempotency_key: str = "",
                  tags: Sequence[str] = ()) -> RunRef:
        """A flow run of a deployment, now (the demo, smoke runs). With an idempotency key, a
        second call returns the first call's run."""
        ...

    def run_status(self, run_id: str) -> RunRef: ...

    def run_artifacts(self, run_id: str) -> list[str]:
        """The run's markdown and table artifacts, as text."""
        ...


# -- the services a use case gets -----------------------------------------------------------


# -- secrets ------------------------------------------------------------------------------------


class SecretResolver(Protocol):
    """Key Vault references of ``.env`` (``bundle.keyvault_ref``), read with the app's identity.
    Failures raise ``SecretUnavailable`` (the reference cannot be read: no role, no such secret,
    disabled) or ``UpstreamError`` (transient)."""

    def latest_version(self, ref: SecretRef) -> str: ...

    def value(self, ref: SecretRef) -> str: ...


class Services(Protocol):
    """What every use case receives: settings, state and the ports, plus the clock and sleep
    (injected, so that tests never wait for real). ``deployer.bootstrap`` builds it; only entry
    points import that."""

    @property
    def settings(self) -> Settings: ...

    @property
    def state(self) -> StateRepository: ...

    @property
    def bundles(self) -> BundleStore: ...

    @property
    def queue(self) -> RequestQueue: ...

    @property
    def builder(self) -> ImageBuilder: ...

    @property
    def runtime(self) -> AgentRuntime: ...

    @property
    def orchestrator(self) -> Orchestrator: ...

    @property
    def limits(self) -> BundleLimits: ...

    @property
    def checker(self) -> DeploymentChecker: ...

    @property
    def code(self) -> CodeStore: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def secrets(self) -> SecretResolver: ...

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...
