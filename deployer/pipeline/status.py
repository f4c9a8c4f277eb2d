"""Status: what the state store knows per module, plus its last run."""

from __future__ import annotations

from dataclasses import dataclass

from deployer.bootstrap import Services
from deployer.models import ModuleState, RunRecord


@dataclass(frozen=True)
class ModuleStatus:
    module: str
    state: ModuleState | None
    last_run: RunRecord | None


def module_statuses(services: Services, module: str | None = None) -> list[ModuleStatus]:
    states = {m.module: m for m in services.state.modules()}
    runs = services.state.runs(module)
    last: dict[str, RunRecord] = {}
    for record in runs:  # sorted by creation: the last one wins
        last[record.module] = record
    names = sorted(set(states) | set(last))
    if module is not None:
        names = [n for n in names if n == module]
    return [ModuleStatus(n, states.get(n), last.get(n)) for n in names]
