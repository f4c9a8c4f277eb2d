"""The rotation's one vocabulary: typed operations.

``plan.plan_rotation`` returns them, the run record stores them (``to_dict``), ``deploy
--dry-run`` prints them (``describe``) and the engine carries each out with the handler the
table ``handlers.HANDLERS`` has for its type, which returns its typed result (``results``).
Every operation is one checkpointed stage of the run record, named by ``key``; the request's
other stages are ``models.RequestStage``.

Phases decide what a failure means: before ``cutover`` nothing points at the new agent (remove
it, the old one keeps serving); during it some deployments may already point at it (keep both);
``after`` it the new revision serves and only old agents are being retired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from deployer.models import RequestStage


class Phase(StrEnum):
    PREPARE = "prepare"
    CUTOVER = "cutover"
    RETIRE = "retire"


@dataclass(frozen=True)
class Operation:
    kind: ClassVar[str]
    phase: ClassVar[Phase]

    @property
    def key(self) -> str:
        """The operation's stage name in the run record (unique within a plan)."""
        return self.kind

    def describe(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.kind, **{f.name: _plain(getattr(self, f.name))
                                    for f in dataclasses.fields(self)}}


@dataclass(frozen=True)
class PublishCode(Operation):
    kind = "publish-code"
    phase = Phase.PREPARE
    module: str
    code_digest: str

    def describe(self) -> str:
        return (f"publish code {self.code_digest[:19]} of {self.module} to the code store, "
                "where flow runs pull it from")


@dataclass(frozen=True)
class CheckCode(Operation):
    kind = "check-code"
    phase = Phase.PREPARE
    agent: str
    queue: str
    deployments: tuple[str, ...]
    #: the agent's warm checker answers (else: a run of the check flow, on the worker's poll)
    warm: bool = False

    def describe(self) -> str:
        how = "its warm checker" if self.warm else "a check run"
        return (f"check on agent {self.agent} ({how}) that the new code loads "
                f"({', '.join(self.deployments)}) in the current image")


@dataclass(frozen=True)
class BuildImage(Operation):
    kind = "build"
    phase = Phase.PREPARE
    module: str
    image_key: str  # what names the image: its dependencies (or its code, without a code store)

    def describe(self) -> str:
        return f"build the image of {self.module} for {self.image_key[:19]}"


@dataclass(frozen=True)
class ReuseImage(Operation):
    kind = "reuse-image"
    phase = Phase.PREPARE
    ref: str
    working_dir: str
    digest: str = ""

    def describe(self) -> str:
        return f"reuse image {self.ref}"


@dataclass(frozen=True)
class StartAgent(Operation):
    kind = "start-agent"
    phase = Phase.PREPARE
    agent: str
    queue: str
    revision_id: str

    def describe(self) -> str:
        return f"start agent {self.agent} (revision {self.revision_id}) on queue {self.queue}"


@dataclass(frozen=True)
class CheckEntrypoints(Operation):
    kind = "check-entrypoints"
    phase = Phase.PREPARE
    agent: str
    deployments: tuple[str, ...]

    def describe(self) -> str:
        return (f"check that agent {self.agent} loads every entrypoint "
                f"({', '.join(self.deployments)}) in the revision's own environment")


@dataclass(frozen=True)
class CheckInContainer(Operation):
    """A module whose runs each get a container (``isolation: run``) has no agent to prove a
    revision on: a container of the revision's image loads its flows, says so and ends."""

    kind = "check-container"
    phase = Phase.PREPARE
    container: str
    revision_id: str
    deployments: tuple[str, ...]

    def describe(self) -> str:
        return (f"check in a container of its own ({self.container}) that the revision's image "
                f"loads every entrypoint ({', '.join(self.deployments)}); no agent is started: "
                "each flow run gets a container")


@dataclass(frozen=True)
class AwaitOnline(Operation):
    kind = "wait-online"
    phase = Phase.PREPARE
    agent: str

    def describe(self) -> str:
        return f"wait until worker {self.agent} is ONLINE in Prefect"


@dataclass(frozen=True)
class Register(Operation):
    kind = "register"
    phase = Phase.CUTOVER
    queue: str
    deployments: tuple[str, ...]

    def describe(self) -> str:
        return f"re-point deployments {', '.join(self.deployments) or '-'} to queue {self.queue}"


@dataclass(frozen=True)
class AwaitReady(Operation):
    kind = "wait-ready"
    phase = Phase.CUTOVER
    queue: str
    deployments: tuple[str, ...]

    def describe(self) -> str:
        return f"wait until Prefect reports queue {self.queue} and its deployments READY"


@dataclass(frozen=True)
class SmokeRun(Operation):
    kind = "smoke-run"
    phase = Phase.CUTOVER
    deployment: str
    flow: str

    @property
    def key(self) -> str:
        return f"{self.kind} {self.deployment}"

    def describe(self) -> str:
        return f"run deployment {self.flow}/{self.deployment} once on the new agent (smoke run)"


@dataclass(frozen=True)
class HoldQueue(Operation):
    kind = "hold-queue"
    phase = Phase.CUTOVER
    agent: str
    queue: str
    to_queue: str

    @property
    def key(self) -> str:
        return f"{self.kind} {self.agent}"

    def describe(self) -> str:
        return (f"pause queue {self.queue} of agent {self.agent} (it takes no new run) and "
                f"re-home its waiting runs to {self.to_queue}")


@dataclass(frozen=True)
class Commit(Operation):
    kind = "commit"
    phase = Phase.CUTOVER
    revision_id: str
    agent: str
    draining: tuple[str, ...]  # old agents that drain from now on

    def describe(self) -> str:
        serves = f"agent {self.agent}" if self.agent else "a container per run"
        return (f"record revision {self.revision_id} ({serves}) as current; the module "
                "is free for its next request")


@dataclass(frozen=True)
class Bake(Operation):
    kind = "bake"
    phase = Phase.RETIRE
    agent: str  # the new agent
    queue: str
    previous: str  # the agent that takes over again if the new revision's runs fail

    def describe(self) -> str:
        if not self.agent:  # its runs each get a container: nothing to keep ready
            return (f"watch the new revision's runs on queue {self.queue}; if they fail, "
                    "re-register the deployments at the previous revision"
                    + (f" (agent {self.previous}, kept ready, its queue paused)"
                       if self.previous else ""))
        if self.previous == self.agent:  # a code-only revision: the same agent serves both
            return (f"watch the new revision's runs on queue {self.queue}; if they fail, "
                    "re-register the deployments at the previous revision's code")
        return (f"watch the new revision's runs on queue {self.queue}; if they fail, hand the "
                f"deployments back to {self.previous} (kept ready, its queue paused)")


@dataclass(frozen=True)
class Drain(Operation):
    kind = "drain"
    phase = Phase.RETIRE
    agent: str
    queue: str

    @property
    def key(self) -> str:
        return f"{self.kind} {self.agent}"

    def describe(self) -> str:
        return (f"let agent {self.agent} finish its in-flight runs (looked at now and then, "
                "never killed before the drain deadline)")


@dataclass(frozen=True)
class StopAgent(Operation):
    kind = "stop-agent"
    phase = Phase.RETIRE
    agent: str
    queue: str

    @property
    def key(self) -> str:
        return f"{self.kind} {self.agent}"

    def describe(self) -> str:
        return f"stop agent {self.agent} and delete its queue {self.queue}"


KINDS: dict[str, type[Operation]] = {cls.kind: cls for cls in (
    PublishCode, CheckCode, BuildImage, ReuseImage, StartAgent, CheckEntrypoints, CheckInContainer,
    AwaitOnline,
    Register, AwaitReady, SmokeRun, HoldQueue, Commit, Bake, Drain, StopAgent)}


#: every stage a request can have, in the order they happen: its own, then its plan's (a plan
#: takes check-code or the rows from build to wait-online, never both)
STAGE_ORDER: tuple[str, ...] = (*(s.value for s in RequestStage), *KINDS)


def stage_kind(name: str) -> str:
    """``drain agent-x`` -> ``drain``: a stage's kind, as STAGE_ORDER names it."""
    return name.split(" ", 1)[0]


def in_time_order(names: Iterable[str]) -> list[str]:
    """Stage names in the order they happen (stored history sorts them by name)."""
    rank = {kind: n for n, kind in enumerate(STAGE_ORDER)}
    return sorted(names, key=lambda name: rank.get(stage_kind(name), len(rank)))


def from_dict(data: dict[str, Any]) -> Operation:
    fields = dict(data)
    cls = KINDS[fields.pop("op")]
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, value in fields.items():
        if "tuple" in str(hints.get(name, "")) and isinstance(value, list):
            fields[name] = tuple(value)
    return cls(**fields)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
