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

from deployer.models import PER_RUN_QUEUE, ModuleState, RequestKind, Revision
from deployer.ports.agents import AgentInfo, AgentState
from deployer.ports.images import Image
from deployer.rotation.operations import (
    AwaitOnline,
    AwaitReady,
    Bake,
    BuildImage,
    CheckCode,
    CheckEntrypoints,
    CheckInContainer,
    Commit,
    Drain,
    HoldQueue,
    Operation,
    PublishCode,
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
    #: flow runs pull their code from the code store (``CodeStore.requirement`` says when not)
    code_store: bool = False
    #: why the dependencies are what they are, and why the code store cannot serve (if so)
    parts_why: str = ""
    #: what is wrong with the code store's copy of the serving revision, when this request is
    #: for that revision again (a re-upload, ``deploy --repair``): it is published again
    code_damage: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    noop: bool
    reason: str
    new_agent: str
    operations: tuple[Operation, ...]
    #: which parts of the revision changed, and the path it takes: code (re-registered, no
    #: image, no agent) | code-rebuild (a code change built into an image: no code store, or a
    #: serving agent that is not healthy) | config | dependencies | first | repair | none
    path: str = "none"
    changed: tuple[str, ...] = ()

    def to_data(self) -> tuple[dict[str, object], ...]:
        return tuple(op.to_dict() for op in self.operations)

    def steps(self) -> list[str]:
        return [op.describe() for op in self.operations]


def image_key(revision: Revision, code_store: bool) -> str:
    """What names a revision's image: its dependencies when flow runs pull code from the code
    store (a code change reuses the image), else its code (the image carries the code)."""
    return revision.deps_digest if code_store and revision.deps_digest else revision.code_digest


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
    changed = _changed(revision, state.current if state else None)
    deployments = tuple(inputs.deployments)
    if state is not None and state.current is not None and revision.same_as(state.current) \
            and current is not None:
        extras = tuple(StopAgent(a.name, a.queue) for a in mine if a.name != current.name)
        if inputs.code_store and inputs.code_damage:
            # its runs refuse the damaged copy: publish it again, re-register (the pull steps
            # that verify), and record it; nothing else changes
            return Plan(False, f"the code store's copy of revision {revision.id} is not its code "
                        f"({'; '.join(inputs.code_damage[:3])}): publishing it again",
                        current.name, (PublishCode(revision.module, revision.code_digest),
                                       Register(current.queue, deployments),
                                       Commit(revision.id, current.name, ()), *extras), "repair")
        if not extras:
            return Plan(True, "the module already runs this revision and its agent is healthy",
                        current.name, ())
        return Plan(False, "already current; retiring agents an interrupted rotation left behind",
                    current.name, extras, "repair")
    if revision.per_run and state is not None and revision.same_as(state.current):
        return _per_run_current(inputs, mine, deployments)
    publish: list[Operation] = [PublishCode(revision.module, revision.code_digest)] \
        if inputs.code_store else []
    if changed == ("code",) and inputs.code_store and current is not None \
            and not revision.per_run:
        return _code_only(inputs, current, publish, deployments)
    new = agent_name(inputs.prefix, revision.module, inputs.now, {a.name for a in inputs.agents})
    ops: list[Operation] = [*publish, _image(inputs)]
    was_per_run = state is not None and state.current is not None and state.current.per_run
    if revision.per_run:  # no agent: a check in a container, then each run gets its own
        ops += [CheckInContainer(f"{new}-check", revision.id, deployments),
                Register(PER_RUN_QUEUE, deployments)]
        new, queue = "", PER_RUN_QUEUE
    else:
        ops += [StartAgent(new, new, revision.id), CheckEntrypoints(new, deployments),
                AwaitOnline(new), Register(new, deployments), AwaitReady(new, deployments)]
        queue = new
    ops += [SmokeRun(name, flow) for name, flow in inputs.smoke]
    if was_per_run and not revision.per_run:  # runs waiting for a container go to the agent
        ops.append(HoldQueue(PER_RUN_QUEUE, PER_RUN_QUEUE, queue))
    ops += [HoldQueue(old.name, old.queue, queue) for old in mine]
    ops.append(Commit(revision.id, new, tuple(old.name for old in mine)))
    previous = current.name if current is not None else (
        state.agent.name if state is not None and state.agent is not None else "")
    kept = bool(previous) and any(a.name == previous for a in mine)
    if inputs.bake and (kept or was_per_run):
        ops.append(Bake(new, queue, previous if kept else ""))
    ops += [Drain(old.name, old.queue) for old in mine]
    ops += [StopAgent(old.name, old.queue) for old in mine]
    path = "first" if state is None or state.current is None else (
        "repair" if not changed else ("dependencies" if "dependencies" in changed else
                                      "config" if "config" in changed else "code-rebuild"))
    return Plan(False, _reason(inputs, changed), new, tuple(ops), path, changed)


def _image(inputs: Inputs) -> Operation:
    if inputs.image is not None:
        return ReuseImage(inputs.image.ref, inputs.image.working_dir, inputs.image.digest)
    if inputs.kind is not RequestKind.DEPLOY:
        raise ValueError("only a bundle deploy can build an image")
    return BuildImage(inputs.revision.module, image_key(inputs.revision, inputs.code_store))


def _per_run_current(inputs: Inputs, mine: Sequence[AgentInfo],
                     deployments: tuple[str, ...]) -> Plan:
    """The revision already serves, each run in a container: nothing to start; agents an
    interrupted switch left behind are retired, a damaged code copy is published again."""
    revision = inputs.revision
    extras = tuple(StopAgent(a.name, a.queue) for a in mine)
    if inputs.code_store and inputs.code_damage:
        return Plan(False, f"the code store's copy of revision {revision.id} is not its code "
                    f"({'; '.join(inputs.code_damage[:3])}): publishing it again", "",
                    (PublishCode(revision.module, revision.code_digest),
                     Register(PER_RUN_QUEUE, deployments), Commit(revision.id, "", ()), *extras),
                    "repair")
    if not extras:
        return Plan(True, "the module already runs this revision (a container per run)", "", ())
    return Plan(False, "already current; retiring agents an interrupted rotation left behind",
                "", extras, "repair")


def _code_only(inputs: Inputs, current: AgentInfo, publish: list[Operation],
               deployments: tuple[str, ...]) -> Plan:
    """Only code changed and flow runs pull code: no image, no new agent. The serving agent
    proves that the new code loads, then its deployments are re-registered to pull it."""
    revision = inputs.revision
    warm = inputs.state is not None and inputs.state.agent is not None and inputs.state.agent.checks
    ops: list[Operation] = [*publish, CheckCode(current.name, current.queue, deployments, warm),
                            Register(current.queue, deployments),
                            AwaitReady(current.queue, deployments)]
    ops += [SmokeRun(name, flow) for name, flow in inputs.smoke]
    ops.append(Commit(revision.id, current.name, ()))
    if inputs.bake:
        ops.append(Bake(current.name, current.queue, current.name))
    return Plan(False, "code-only change: the serving agent's deployments pull the new code "
                "(no image build, no new agent)", current.name, tuple(ops), "code", ("code",))


def _changed(revision: Revision, current: Revision | None) -> tuple[str, ...]:
    """Which of the three parts differ from the serving revision (``bundle.parts``)."""
    if current is None:
        return ("dependencies", "code", "config")
    out = []
    if revision.deps_digest and current.deps_digest:
        deps_changed = revision.deps_digest != current.deps_digest
    else:  # a revision recorded before dependencies had a digest: any code change may be one
        deps_changed = revision.code_digest != current.code_digest
    if deps_changed:
        out.append("dependencies")
    if revision.code_digest != current.code_digest:
        out.append("code")
    if revision.config_digest != current.config_digest:
        out.append("config")
    return tuple(out)


def _reason(inputs: Inputs, changed: tuple[str, ...]) -> str:
    revision, state = inputs.revision, inputs.state
    mode = state is not None and state.current is not None and \
        state.current.per_run != revision.per_run
    if mode:
        return ("switch to a container per run: no agent; the old agent drains" if revision.per_run
                else "switch to an agent: runs waiting for a container go to it")
    if revision.per_run:
        return "new revision: each flow run gets a container of its own (no agent to rotate)"
    if state is not None and revision.same_as(state.current):
        return "same revision, but its agent is not healthy: starting a fresh one"
    if changed == ("config",):
        return "configuration change: new agent from the same image"
    if "dependencies" not in changed and inputs.image is not None:
        why = "" if inputs.code_store else f" ({inputs.parts_why})" if inputs.parts_why else ""
        return f"code change: new agent from an existing image{why}"
    return "new revision" if inputs.image is None else "new revision from an existing image"
