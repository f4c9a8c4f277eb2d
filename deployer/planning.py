"""Pure decisions: what a rotation will do, as data. No I/O here.

``plan_rotation`` looks at the request's revision, the module's state, the image registry and the
live agents, and returns the ordered operations. The pipeline stores the plan in the run record
and then applies it; ``deployer deploy --dry-run`` prints the same plan and applies nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deployer.models import ModuleState, RequestKind, Revision
from deployer.ports import AgentInfo, AgentState, Image


@dataclass(frozen=True)
class Operation:
    action: str  # build | reuse-image | start-agent | wait-online | register | drain | stop-agent | record
    target: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "detail": dict(self.detail)}

    def describe(self) -> str:
        d = self.detail
        return {
            "build": f"build image for code {d.get('code', '')} ({self.target})",
            "reuse-image": f"reuse image {self.target}",
            "start-agent": f"start agent {self.target} on queue {d.get('queue', '')}",
            "wait-online": f"wait until worker {self.target} is ONLINE in Prefect",
            "register": f"re-point deployments {', '.join(d.get('deployments', [])) or '-'} "
                        f"to queue {self.target}",
            "drain": f"drain agent {self.target}: pause queue {d.get('queue', '')}, re-home its "
                     "scheduled runs, let in-flight runs finish",
            "stop-agent": f"stop agent {self.target}",
            "record": f"record revision {self.target} as current",
        }.get(self.action, f"{self.action} {self.target}")


@dataclass(frozen=True)
class Plan:
    noop: bool
    reason: str
    new_agent: str
    new_queue: str
    operations: tuple[Operation, ...]

    def operation(self, action: str) -> Operation | None:
        return next((op for op in self.operations if op.action == action), None)


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


def plan_rotation(*, kind: RequestKind, revision: Revision, state: ModuleState | None,
                  image: Image | None, agents: Sequence[AgentInfo], online: Collection[str],
                  deployments: Sequence[str], prefix: str, now: datetime) -> Plan:
    # ``online`` only matters when ``revision`` is the current one: callers may pass an empty set
    # otherwise and spare the orchestrator a call
    current = healthy_current(state, agents, online)
    if state is not None and revision.same_as(state.current) and current is not None:
        extras = [a for a in agents if a.name != current.name]
        if not extras:
            return Plan(True, "the module already runs this revision and its agent is healthy",
                        current.name, current.queue, ())
        return Plan(False, "already current; retiring agents an interrupted rotation left behind",
                    current.name, current.queue,
                    tuple(Operation("stop-agent", a.name, {"queue": a.queue}) for a in extras))
    new = agent_name(prefix, revision.module, now, {a.name for a in agents})
    ops: list[Operation] = []
    if image is not None:
        ops.append(Operation("reuse-image", image.ref, {"code": revision.code_digest,
                                                        "working_dir": image.working_dir,
                                                        "digest": image.digest}))
    else:
        if kind is not RequestKind.DEPLOY:
            raise ValueError("only a bundle deploy can build an image")
        ops.append(Operation("build", revision.module, {"code": revision.code_digest}))
    ops += [
        Operation("start-agent", new, {"queue": new, "revision": revision.id}),
        Operation("wait-online", new),
        Operation("register", new, {"deployments": list(deployments)}),
    ]
    for old in agents:
        ops.append(Operation("drain", old.name, {"queue": old.queue}))
    for old in agents:
        ops.append(Operation("stop-agent", old.name, {"queue": old.queue}))
    ops.append(Operation("record", revision.id, {"agent": new}))
    if state is not None and revision.same_as(state.current):
        reason = "same revision, but its agent is not healthy: starting a fresh one"
    elif state is not None and state.current is not None and \
            state.current.code_digest == revision.code_digest:
        reason = "configuration change: new agent from the same image"
    else:
        reason = "new revision" if image is None else "new revision from an existing image"
    return Plan(False, reason, new, new, tuple(ops))


def plan_detail(plan: Plan) -> dict[str, Any]:
    return {"noop": plan.noop, "reason": plan.reason, "new_agent": plan.new_agent,
            "new_queue": plan.new_queue, "operations": [op.to_dict() for op in plan.operations],
            "steps": [op.describe() for op in plan.operations]}


def plan_from_detail(detail: dict[str, Any]) -> Plan:
    return Plan(noop=detail["noop"], reason=detail["reason"], new_agent=detail["new_agent"],
                new_queue=detail["new_queue"],
                operations=tuple(Operation(**op) for op in detail["operations"]))
