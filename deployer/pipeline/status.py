"""Status: per module, what the state store knows, what runs, and what Prefect sees: the current
revision and its agent, the request rotating it (if any), the requests waiting for it, and the
agents of older revisions still draining their runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from deployer.errors import DeployerError, NotFound, UpstreamError, UsageError
from deployer.models import ModuleState, RunRecord
from deployer.ports.agents import AgentInfo, Role
from deployer.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentStatus:
    agent: AgentInfo
    worker: str  # ONLINE | OFFLINE | unknown
    current: bool
    role: str = ""  # current | draining | new (of a request in progress) | old


@dataclass(frozen=True)
class ModuleStatus:
    module: str
    state: ModuleState | None
    last_run: RunRecord | None
    agents: list[AgentStatus] = field(default_factory=list)
    #: requests not finished yet, oldest first: rotating, waiting, draining
    active: list[RunRecord] = field(default_factory=list)
    #: the serving revision's code in the code store: "" (its runs do not pull it), verified,
    #: damaged (``code_problems`` say how: every run of it refuses to start) or unknown
    code: str = ""
    code_problems: tuple[str, ...] = ()
    #: what could not be asked (Prefect, the code store), and so shows as "unknown"
    unreachable: tuple[str, ...] = ()
    #: a module whose runs each get a container (``isolation: run``): how many are running
    containers: int = 0

    @property
    def per_run(self) -> bool:
        return bool(self.state and self.state.current and self.state.current.per_run)


def module_statuses(services: Services, module: str | None = None, *,
                    live: bool = True) -> list[ModuleStatus]:
    """``live``: also ask the agent runtime and Prefect (slower; a failure there shows as
    'unknown' instead of failing the whole status)."""
    states = {m.module: m for m in services.state.modules()}
    last: dict[str, RunRecord] = {}
    active: dict[str, list[RunRecord]] = {}
    for record in services.state.runs(module):  # oldest first: the last one wins
        last[record.module] = record
        if not record.status.finished:
            active.setdefault(record.module, []).append(record)
    names = sorted(set(states) | set(last))
    if module is not None:
        names = [n for n in names if n == module]
    agents: dict[str, list[AgentInfo]] = {}
    containers: dict[str, int] = {}
    if live and names:
        for agent in services.runtime.list(module):  # one listing for every module
            agents.setdefault(agent.module, []).append(agent)
        if any(s.current is not None and s.current.per_run for s in states.values()):
            for run in services.runtime.list(module, detailed=False, role=Role.RUN):
                containers[run.module] = containers.get(run.module, 0) + 1
    statuses = []
    for n in names:
        unreachable: list[str] = []
        code = _code(services, states.get(n), unreachable) if live else ("", ())
        statuses.append(ModuleStatus(
            n, states.get(n), last.get(n),
            _agents(services, n, states.get(n), agents.get(n, []), unreachable),
            active.get(n, []), *code, unreachable=tuple(unreachable),
            containers=containers.get(n, 0)))
    return statuses


def _code(services: Services, state: ModuleState | None,
          unreachable: list[str]) -> tuple[str, tuple[str, ...]]:
    """Whether the code store still holds exactly the code the serving revision's runs pull."""
    current = state.current if state else None
    if current is None or not current.code_store:
        return "", ()
    try:
        problems = services.code.verify(current.module, current.code_digest)
    except DeployerError as exc:
        logger.warning("status.code_unreadable module=%s error=%s", current.module, exc.message)
        unreachable.append(exc.message)
        return "unknown", ()
    return ("damaged", tuple(problems)) if problems else ("verified", ())


def _agents(services: Services, module: str, state: ModuleState | None,
            agents: list[AgentInfo], unreachable: list[str]) -> list[AgentStatus]:
    if not agents:
        return []
    try:
        online: set[str] | None = services.orchestrator.online_workers(module)
    except UpstreamError as exc:
        logger.warning("status.prefect_unreachable module=%s error=%s", module, exc.message)
        unreachable.append(exc.message)
        online = None
    current = state.agent.name if state and state.agent else None
    draining = {d.name for d in state.draining} if state else set()

    def role(agent: AgentInfo) -> str:
        if agent.name == current:
            return "current"
        if agent.name in draining:
            return "draining"
        return "new" if state and state.owner else "old"

    return [AgentStatus(agent=a, current=a.name == current, role=role(a),
                        worker="unknown" if online is None else
                        ("ONLINE" if a.name in online else "OFFLINE")) for a in agents]


def request_by_prefix(services: Services, module: str, prefix: str) -> RunRecord:
    """The module's request whose id starts with ``prefix`` (as git takes a commit's), for ids
    shown short (``status``, ``history``); none or several is an error that says which."""
    exact = services.state.run(module, prefix)
    if exact is not None:
        return exact.value
    found = [r for r in services.state.runs(module) if r.request_id.startswith(prefix.lower())]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(f"request {prefix!r} of {module} is ambiguous: "
                         + ", ".join(r.request_id for r in found[:10]),
                         hint="give more of its characters")
    recent = ", ".join(r.request_id[:8] for r in services.state.runs(module)[-5:]) or "none yet"
    raise NotFound(f"no request {prefix!r} for module {module}",
                   hint=f"its recent requests: {recent} (`deployer history {module}` lists them all)")
