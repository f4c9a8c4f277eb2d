"""Domain records: frozen dataclasses, plain data, JSON-serializable through ``codec``.

Vocabulary (DESIGN.md): a *module* is a flows/<module>/ folder; a *revision* is one immutable
deployable version of it (code digest + config digest + the image built from the code); an
*agent* is a running worker for a revision; a *request* is one unit of pipeline work; its *run
record* is the checkpointed progress of that request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from deployer.approval import Approval
from deployer.bundle.digest import short

if TYPE_CHECKING:
    from deployer.bundle import Module


#: the time of a record built as plain data, with no clock at hand (tests, examples): wall time
#: comes only from the injected clock (``services.Clock``)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the work queue of a module with ``isolation: run``: no worker polls it, the dispatcher
#: (``deployer.dispatch``) starts a container for each of its runs
PER_RUN_QUEUE = "per-run"


class RequestKind(StrEnum):
    DEPLOY = "deploy"  # a bundle: build if needed, rotate
    REDEPLOY = "redeploy"  # an image pushed to the registry: rotate, no build
    ROLLBACK = "rollback"  # an earlier revision's image: rotate, no build
    REMOVE = "remove"  # ``deployer remove``: out of service; older requests never bring it back
    PROMOTE = "promote"  # the revision serving in an earlier environment: rotate, no build


class RunStatus(StrEnum):
    QUEUED = "queued"
    #: its environment requires an approval (DEPLOYER_APPROVAL): nothing starts until it has one
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING = "waiting"  # its module is busy with another request; it runs when that is done
    RUNNING = "running"
    BAKING = "baking"  # cut over; the new revision's runs are watched, the previous agent ready
    DRAINING = "draining"  # cut over (the new revision serves); old agents finish their runs
    SUCCEEDED = "succeeded"
    NOOP = "noop"  # nothing to do: the module already runs this revision
    FAILED = "failed"
    REJECTED = "rejected"  # bad input: nothing was attempted
    SUPERSEDED = "superseded"  # a newer request of the module replaced it before it started
    ROLLED_BACK = "rolled_back"  # cut over, then its runs failed: the previous revision is back
    REMOVED = "removed"  # the module was removed (``deployer remove``), during its bake window

    @property
    def finished(self) -> bool:
        """Nothing more happens to the request."""
        return self in (RunStatus.SUCCEEDED, RunStatus.NOOP, RunStatus.FAILED, RunStatus.REJECTED,
                        RunStatus.SUPERSEDED, RunStatus.ROLLED_BACK, RunStatus.REMOVED)

    @property
    def settled(self) -> bool:
        """What the request does to its module is known (it has cut over, or ended)."""
        return self.finished or self in (RunStatus.BAKING, RunStatus.DRAINING)


class RequestStage(StrEnum):
    """The stages of a request that are not operations of its plan (those are named by
    ``rotation.operations``): validated at intake, enqueued, waiting for its module, planned."""

    VALIDATE = "validate"
    ENQUEUE = "enqueue"
    WAIT = "wait"
    PLAN = "plan"


class StageStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Trigger:
    """What caused a request: ``source`` is blob | webhook | cli | timer, ``ref`` its identity."""

    source: str
    ref: str
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Intent:
    """When a request's wish was expressed, for "the newest wins": an upload's time in storage,
    a push's time in the registry, a rollback's time of asking. ``tiebreak`` orders wishes of the
    same second (storage times have one-second resolution): the uploader's own timestamp and the
    blob name."""

    at: datetime
    tiebreak: str = ""

    def newer_than(self, other: Intent) -> bool:
        return (self.at, self.tiebreak) > (other.at, other.tiebreak)


@dataclass(frozen=True)
class Revision:
    module: str
    code_digest: str
    config_digest: str
    image: str = ""  # image reference; empty until built
    bundle: str = ""  # blob name of the bundle the revision came from (its .env lives there)
    image_digest: str = ""  # the registry's digest of ``image`` (empty for local images)
    deps_digest: str = ""  # what the image is built from (``bundle.parts``); empty: unknown
    #: the Key Vault references of its .env, pinned: (key, versioned SecretUri), never a value
    #: (``pipeline.secret_pins``); the config digest covers them
    secrets: tuple[tuple[str, str], ...] = ()
    #: its flow runs pull (and verify) its code from the code store; set when it is committed
    code_store: bool = False
    #: how its flow runs run: ``agent`` (the module's always-on agent) or ``run`` (a container
    #: each, started by ``deployer.dispatch``); prefect.yaml's ``deployer.isolation``
    isolation: str = "agent"

    @property
    def per_run(self) -> bool:
        return self.isolation == "run"

    @property
    def id(self) -> str:
        """Short, stable name: ``<code 12>-<config 8>``."""
        return f"{short(self.code_digest)}-{short(self.config_digest, 8)}"

    @staticmethod
    def of(module: Module, config_key: str, bundle: str = "",
           secrets: tuple[tuple[str, str], ...] = ()) -> Revision:
        """The revision a validated module is: its three digests (``bundle.parts``); a module
        whose Key Vault references are pinned gives its pins as ``secrets``."""
        return Revision(module.name, module.code_digest(), module.config_digest(config_key),
                        bundle=bundle, deps_digest=module.dependencies().digest, secrets=secrets,
                        isolation=module.options.isolation)

    def same_as(self, other: Revision | None) -> bool:
        return (other is not None and other.code_digest == self.code_digest
                and other.config_digest == self.config_digest)


@dataclass(frozen=True)
class AgentRef:
    """The agent currently serving a module (the runtime knows its live state)."""

    name: str
    revision_id: str
    queue: str
    started_at: datetime
    #: its warm checker answers check requests (``preflight.CHECKER``); agents started by an
    #: older deployer have none, and get a check run instead
    checks: bool = False


@dataclass(frozen=True)
class Claim:
    """A request's place at its module: the owner of the rotation, a waiter, or the newest."""

    request_id: str
    kind: RequestKind
    intent: Intent
    since: datetime


@dataclass(frozen=True)
class DrainingAgent:
    """An agent of an older revision that takes no new work and finishes its runs."""

    name: str
    queue: str
    revision_id: str
    request_id: str  # the request whose drain steps look after it
    since: datetime
    deadline: datetime  # past it, runs still in flight are marked crashed


@dataclass(frozen=True)
class Baking:
    """A revision just cut over, watched before its predecessor is let go."""

    request_id: str
    revision_id: str
    since: datetime
    until: datetime  # the window ends then, or earlier once ``runs`` runs have finished
    runs: int
    previous_agent: str  # kept alive, its queue paused, to take over at once


@dataclass(frozen=True)
class Removed:
    """``deployer remove``: when, by whom, and what served until then. A request whose intent is
    older never brings the module back (``ModuleState.newest`` is the removal's claim)."""

    request_id: str
    at: datetime
    revision_id: str = ""  # what served until the removal ("" when nothing did)
    user: str = ""


@dataclass(frozen=True)
class RefusedRevision:
    """A revision rolled back on its own: a push or a re-upload of it does not bring it back
    (an explicit ``deployer deploy`` or ``deployer rollback --to`` still can)."""

    revision_id: str
    code_digest: str
    config_digest: str
    image_digest: str
    at: datetime
    request_id: str
    reason: str


@dataclass(frozen=True)
class ModuleState:
    """A module's document. ``owner`` is the request rotating the module now (etag-guarded: at
    most one); ``newest`` the newest request that ever owned it (an older one arriving late is
    superseded); ``draining`` older agents still finishing their runs after a cutover (the module
    is free meanwhile). Requests not finished yet are listed apart (``state.pending``)."""

    module: str
    current: Revision | None = None
    agent: AgentRef | None = None
    request_id: str = ""  # the request that made ``current`` current
    updated_at: datetime = EPOCH
    owner: Claim | None = None
    newest: Claim | None = None
    draining: tuple[DrainingAgent, ...] = ()
    baking: Baking | None = None
    refused: tuple[RefusedRevision, ...] = ()
    removed: Removed | None = None  # out of service since; a newer deploy clears it

    @property
    def serving_queue(self) -> str:
        """The queue the serving revision's runs go to ("" when nothing serves)."""
        if self.agent is not None:
            return self.agent.queue
        return PER_RUN_QUEUE if self.current is not None and self.current.per_run else ""

    def refusal(self, revision: Revision) -> RefusedRevision | None:
        for refused in self.refused:
            if (refused.code_digest, refused.config_digest) == (revision.code_digest,
                                                                revision.config_digest) or \
                    (refused.image_digest and refused.image_digest == revision.image_digest):
                return refused
        return None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a module's append-only history: a revision, why, and how it went."""

    module: str
    revision: Revision
    request_id: str
    kind: RequestKind
    trigger: Trigger
    outcome: RunStatus
    at: datetime
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    error: dict[str, Any] | None = None
    #: which parts changed from the revision before (dependencies, code, config) and the path
    #: that took: code (re-registration), config (new agent), dependencies (build), first, repair
    changed: tuple[str, ...] = ()
    path: str = ""
    #: seconds from the request to its commit, when the new revision went live (its bake window,
    #: if any, came after); None: it never went live (or was recorded before this was)
    live_after: float | None = None


@dataclass(frozen=True)
class Request:
    request_id: str
    kind: RequestKind
    module: str
    trigger: Trigger
    revision: Revision  # the revision to make current (image may be empty for DEPLOY)
    created_at: datetime = EPOCH
    intent: Intent | None = None  # None: when the request was made

    @staticmethod
    def make_id(*key_parts: str) -> str:
        """Deterministic id from the request's idempotency key: a redelivered trigger for the same
        event maps to the same request, and so to the same run record."""
        return hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Stage:
    name: str
    status: StageStatus
    started_at: datetime
    finished_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Waiting:
    """What a request waits for now, and when it looks again."""

    what: str
    since: datetime
    next_look_at: datetime | None = None
    on: str = ""  # the request it waits for, or the operation that waits


@dataclass(frozen=True)
class RunRecord:
    request_id: str
    kind: RequestKind
    module: str
    trigger: Trigger
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    revision: Revision | None = None
    stages: tuple[Stage, ...] = ()
    error: dict[str, Any] | None = None
    attempts: int = 0
    intent: Intent | None = None
    #: the continuation message the request expects next: any other is stale and dropped
    token: str = ""
    #: the operations of the rotation, as planned (``rotation.operations``)
    plan: tuple[dict[str, Any], ...] = ()
    waiting: Waiting | None = None
    superseded_by: str = ""
    steps: int = 0  # invocations that worked on it
    #: what became of the notifications about it (DEPLOYER_NOTIFY_URLS)
    notices: tuple[dict[str, Any], ...] = ()
    #: the request's W3C trace context: every step's span is under it (``deployer.telemetry``)
    traceparent: str = ""
    #: its environment's approval (DEPLOYER_APPROVAL): who asked, who decided
    approval: Approval | None = None

    def as_request(self) -> Request:
        assert self.revision is not None, f"run record {self.request_id} has no revision"
        return Request(self.request_id, self.kind, self.module, self.trigger, self.revision,
                       self.created_at, self.intent)

    @property
    def intent_or_created(self) -> Intent:
        return self.intent or Intent(self.created_at)

    def stage(self, name: str) -> Stage | None:
        for stage in self.stages:
            if stage.name == name:
                return stage
        return None

    def with_stage(self, stage: Stage) -> RunRecord:
        """This record with ``stage`` replaced (same name) or appended."""
        if any(s.name == stage.name for s in self.stages):
            stages = tuple(stage if s.name == stage.name else s for s in self.stages)
        else:
            stages = (*self.stages, stage)
        return replace(self, stages=stages)


@dataclass(frozen=True)
class CleanupItem:
    kind: str  # agent | manifest | tag | bundle | record | queue | report
    module: str
    target: str
    outcome: str  # deleted | kept | deferred | failed | planned
    reason: str
    error: str = ""


@dataclass(frozen=True)
class CleanupReport:
    """One cleanup run: what it deleted, kept (and why), left for the next run, or failed on."""

    report_id: str
    started_at: datetime
    finished_at: datetime
    dry_run: bool
    items: tuple[CleanupItem, ...] = ()
    #: when agents were deleted: the next run paces itself under the quota with these
    agent_deletions: tuple[datetime, ...] = ()
    notices: tuple[dict[str, Any], ...] = ()

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.items if item.outcome == outcome)
