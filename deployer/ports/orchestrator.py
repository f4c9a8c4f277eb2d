"""The orchestrator: Prefect's work pools, queues, deployments and flow runs, in domain terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.errors import Problem, UsageError


@dataclass(frozen=True)
class RunRef:
    id: str
    name: str
    state: str
    deployment: str = ""
    version: str = ""  # the deployment version the run ran (the deployer's revision id)
    message: str = ""  # its state's message (why it failed)


@dataclass(frozen=True)
class RunLog:
    """A line a run logged (the flow's or one of its tasks')."""

    id: str
    at: datetime
    level: str  # DEBUG | INFO | WARNING | ERROR | CRITICAL
    message: str


@dataclass(frozen=True)
class DueRun:
    """A run of a queue no worker polls (``isolation: run``) that is due, for the dispatcher."""

    id: str
    name: str
    pool: str  # the module
    version: str  # the revision it runs
    #: SCHEDULED (due) | PENDING (claimed) | RUNNING: its container should be there
    state: str
    #: its deployment's job variables with the run's own on top: image, cpu, memory, env
    job_variables: dict[str, Any]
    since: datetime | None = None  # when it entered that state
    run_count: int = 0  # its runs so far: above 0, a retry (its process may still be waiting)
    infrastructure: str = ""  # who claimed it (the dispatcher's container name)
    paused: bool = False  # its pool or queue is paused in Prefect: it is not to be started


#: a run's states that are final: it ends in one of these
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def unknown_parameters(schema: dict[str, Any] | None, parameters: dict[str, Any]) -> list[str]:
    """The names in ``parameters`` a deployment's flow does not take: its registered schema says
    which it takes, and whether it takes any other (``additionalProperties``, false unless the
    flow has ``**kwargs``). A run started with them fails when Prefect binds them."""
    if not schema or schema.get("additionalProperties") is not False:
        return []
    known = schema.get("properties") or {}
    return [name for name in parameters if name not in known]


def refuse_unknown(deployment: str, schema: dict[str, Any] | None, parameters: dict[str, Any]) -> None:
    """``start_run``'s refusal of parameters the flow does not take (the adapter's and the fake's)."""
    unknown = unknown_parameters(schema, parameters)
    if unknown:
        takes = ", ".join((schema or {}).get("properties") or {}) or "none"
        raise UsageError(f"{deployment} takes no parameter {', '.join(map(repr, unknown))}",
                         hint=f"the parameters its flow takes: {takes}")


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
                 pull_steps: Sequence[dict[str, Any]], revision_id: str,
                 image: str = "") -> list[str]:
        """Create or update the deployments on ``queue``, each run pulling its code with
        ``pull_steps``, versioned ``revision_id``; delete the pool's other deployer-made
        deployments. Their runs not started yet that carry another version are re-created at
        ``revision_id`` on ``queue`` (same name, parameters and scheduled time): a run pulls what
        its deployment points at when it starts, so its version must say that, and the agent
        that takes it must run that revision. With ``image`` (a module whose runs each get a
        container), their job variables name the image their runs start from. Returns the
        names of deployments that were removed."""
        ...

    def due_runs(self, queue: str, before: datetime, pools: Sequence[str],
                 limit: int = 50) -> list[DueRun]:
        """For all ``pools`` at once: the runs on their queues named ``queue`` that are
        SCHEDULED to start before ``before``, and those in flight (PENDING: claimed; RUNNING)."""
        ...

    def claim(self, run_id: str, marker: str) -> bool:
        """Move a due run to PENDING, marked as ``marker``'s (its infrastructure); False when
        Prefect refuses (taken, or not due any more)."""
        ...

    def runs_now(self, run_ids: Sequence[str]) -> dict[str, RunRef]:
        """The runs as they are now, in one call (a run Prefect no longer has is left out)."""
        ...

    def mark_cancelled(self, run_ids: Sequence[str], message: str) -> list[str]:
        """Mark runs being cancelled (CANCELLING) as cancelled once their process is stopped."""
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
        """A flow run of a deployment, now (``deployer run``, the demo, smoke runs). With an
        idempotency key, a second call returns the first call's run. Parameters the flow does
        not take (``unknown_parameters``) are a ``UsageError`` naming them and those it takes;
        values its schema refuses (enforced), ``UpstreamRefused``."""
        ...

    def run_status(self, run_id: str) -> RunRef:
        """The run now; ``NotFound`` when Prefect has no such run (deleted, or re-created)."""
        ...

    def successor(self, run: RunRef) -> RunRef | None:
        """The run that took ``run``'s place when its deployment moved to another revision
        before it started (``register`` re-creates it: the same name, on the same deployment);
        None when there is none (it was deleted)."""
        ...

    def run_logs(self, run_id: str, since: datetime | None = None, limit: int = 200) -> list[RunLog]:
        """The run's log lines stamped at or after ``since``, oldest first (at most ``limit``).
        Lines reach Prefect in batches, from the worker and the run's process: one may arrive
        after lines stamped later than it."""
        ...

    def run_artifacts(self, run_id: str) -> list[str]:
        """The run's markdown and table artifacts, as text."""
        ...


class DeploymentChecker(Protocol):
    """What only the orchestrator can say about a module's deployments without network: that
    every schedule (cron, interval, rrule, time zone) is one its own models accept."""

    def check(self, module: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]: ...
