"""Pure decisions: what a rotation will do, as operations. No I/O here.

``plan_rotation`` looks at the request's revision, the module's state, the image the registry
has for it and the live agents, and returns the ordered operations. The step driver stores them
in the run record and carries them out; ``deployer deploy --dry-run`` prints the same plan,
computed from inputs gathered by the same function (``inputs.gather``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from deployer.models import ModuleState, RequestKind, Revision
from deployer.ports import AgentInfo, AgentState, Image
from deployer.rotation.operations import (
    AwaitOnline,
    AwaitReady,
    Bake,
    BuildImage,
    CheckEntrypoints,
    Commit,
    Drain,
    HoldQueue,
    Operation,
    Register,
    ReuseImage,
    SmokeRun,
    StartAgent,
    StopAgent,
)


@dataclass(frozen=True)
class Inputs:
    kind: RequestKind
    revision: Revision
    state: ModuleState | None
    image: Image | None  # the image the registry already has for this revision
    agents: Sequence[AgentInfo]  # the module's agents, as the runtime lists them
    online: Collection[str]  # workers ONLINE (only asked for when the revision is current)
    deployments: Sequence[str]
    prefix: str
    now: datetime
    #: agents that other requests are draining right now: theirs to retire, not this plan's
    drained_elsewhere: Collection[str] = ()
    #: (deployment, flow) of the deployments that ask for a smoke run before cutover
    smoke: Sequence[tuple[str, str]] = ()
    bake: bool = False  # watch the new revision's runs before the previous agent goes


@dataclass(frozen=True)
class Plan:
    noop: bool
    reason: str
    new_agent: str
    operations: tuple[Operation, ...]

    def to_data(self) -> tuple[dict[str, object], ...]:
        return tuple(op.to_dict() for op in self.operations)

    def steps(self) -> list[str]:
        return [op.describe() for op in self.operations]


def agent_name(prefix: str, module: str, now: datetime, taken: Collection[str]) -> str:
    """``<prefix>-<module>-<UTC yyyymmddHHMMSS>``: the seed's naming, unique among ``taken``."""
    base = f"{prefix}-{module}-{now:%Y%m%d%H%M%S}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def healthy_current(state: ModuleState | None, agents: Sequence[AgentInfo],
                    online: Collection[str]) -> AgentInfo | None:
    """The module's current agent, if it runs and its worker is ONLINE."""
    if state is None or state.agent is None:
        return None
    for agent in agents:
        if agent.name == state.agent.name and agent.state is AgentState.RUNNING \
                and agent.name in online:
            return agent
    return None


def plan_rotation(inputs: Inputs) -> Plan:
    revision, state = inputs.revision, inputs.state
    mine = [a for a in inputs.agents if a.name not in inputs.drained_elsewhere]
    current = healthy_current(state, mine, inputs.online)
    if state is not None and revision.same_as(state.current) and current is not None:
        extras = [a for a in mine if a.name != current.name]
        if not extras:
            return Plan(True, "the module already runs this revision and its agent is healthy",
                        current.name, ())
        return Plan(False, "already current; retiring agents an interrupted rotation left behind",
                    current.name, tuple(StopAgent(a.name, a.queue) for a in extras))
    new = agent_name(inputs.prefix, revision.module, inputs.now, {a.name for a in inputs.agents})
    ops: list[Operation] = []
    if inputs.image is not None:
        ops.append(ReuseImage(inputs.image.ref, inputs.image.working_dir, inputs.image.digest))
    else:
        if inputs.kind is not RequestKind.DEPLOY:
            raise ValueError("only a bundle deploy can build an image")
        ops.append(BuildImage(revision.module, revision.code_digest))
    deployments = tuple(inputs.deployments)
    ops += [StartAgent(new, new, revision.id), CheckEntrypoints(new, deployments),
            AwaitOnline(new), Register(new, deployments), AwaitReady(new, deployments)]
    ops += [SmokeRun(name, flow) for name, flow in inputs.smoke]
    ops += [HoldQueue(old.name, old.queue, new) for old in mine]
    ops.append(Commit(revision.id, new, tuple(old.name for old in mine)))
    previous = current.name if current is not None else (
        state.agent.name if state is not None and state.agent is not None else "")
    if inputs.bake and previous and any(a.name == previous for a in mine):
        ops.append(Bake(new, new, previous))
    ops += [Drain(old.name, old.queue) for old in mine]
    ops += [StopAgent(old.name, old.queue) for old in mine]
    return Plan(False, _reason(inputs), new, tuple(ops))


def _reason(inputs: Inputs) -> str:
    revision, state = inputs.revision, inputs.state
    if state is not None and revision.same_as(state.current):
        return "same revision, but its agent is not healthy: starting a fresh one"
    if state is not None and state.current is not None and \
            state.current.code_digest == revision.code_digest:
        return "configuration change: new agent from the same image"
    return "new revision" if inputs.image is None else "new revision from an existing image"
