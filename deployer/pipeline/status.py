"""Status: per module, what the state store knows, what runs, and what Prefect sees."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from deployer.bootstrap import Services
from deployer.errors import UpstreamError
from deployer.models import ModuleState, RunRecord
from deployer.ports import AgentInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentStatus:
    agent: AgentInfo
    worker: str  # ONLINE | OFFLINE | unknown
    current: bool


@dataclass(frozen=True)
class ModuleStatus:
    module: str
    state: ModuleState | None
    last_run: RunRecord | None
    agents: list[AgentStatus] = field(default_factory=list)


def module_statuses(services: Services, module: str | None = None, *,
                    live: bool = True) -> list[ModuleStatus]:
    """``live``: also ask the agent runtime and Prefect (slower; a failure there shows as
    'unknown' instead of failing the whole status)."""
    states = {m.module: m for m in services.state.modules()}
    last: dict[str, RunRecord] = {}
    for record in services.state.runs(module):  # oldest first: the last one wins
        last[record.module] = record
    names = sorted(set(states) | set(last))
    if module is not None:
        names = [n for n in names if n == module]
    agents: dict[str, list[AgentInfo]] = {}
    if live and names:
        for agent in services.runtime.list(module):  # one listing for every module
            agents.setdefault(agent.module, []).append(agent)
    return [ModuleStatus(n, states.get(n), last.get(n),
                         _agents(services, n, states.get(n), agents.get(n, []))) for n in names]


def _agents(services: Services, module: str, state: ModuleState | None,
            agents: list[AgentInfo]) -> list[AgentStatus]:
    if not agents:
        return []
    try:
        online: set[str] | None = services.orchestrator.online_workers(module)
    except UpstreamError as exc:
        logger.warning("status.prefect_unreachable module=%s error=%s", module, exc.message)
        online = None
    current = state.agent.name if state and state.agent else None
    return [AgentStatus(agent=a, current=a.name == current,
                        worker="unknown" if online is None else
                        ("ONLINE" if a.name in online else "OFFLINE")) for a in agents]
