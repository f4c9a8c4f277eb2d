"""One view of every environment: per module and environment, what serves (revision, since when,
the outcome of its last request), what waits for an approval, and how far the environment is
behind the one before it (in revisions that succeeded there and are not here yet)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from deployer.models import RunStatus
from deployer.services import Services, each_environment


@dataclass(frozen=True)
class Cell:
    revision: str = ""  # "" when nothing serves
    code_digest: str = ""
    image_digest: str = ""
    since: datetime | None = None
    outcome: str = ""  # of the module's last request there
    awaiting_approval: tuple[str, ...] = ()  # request ids
    #: revisions that went live in the environment before after the one serving here came from
    #: there (None: the first environment)
    behind: int | None = None
    behind_of: str = ""  # that environment


@dataclass(frozen=True)
class Row:
    module: str
    cells: dict[str, Cell] = field(default_factory=dict)


def matrix(services: Services) -> tuple[list[str], list[Row]]:
    """(environment names, a row per module known in any of them)."""
    envs = each_environment(services)
    names = [e.settings.environment_name for e in envs]
    modules = sorted({m.module for e in envs for m in e.state.modules()})
    rows = []
    for module in modules:
        cells: dict[str, Cell] = {}
        previous: Services | None = None
        for env, name in zip(envs, names, strict=True):
            cells[name] = _cell(env, module, previous, names[names.index(name) - 1] if previous else "")
            previous = env
        rows.append(Row(module, cells))
    return names, rows


def _cell(env: Services, module: str, before: Services | None, before_name: str) -> Cell:
    got = env.state.module(module)
    doc = got.value if got else None
    runs = env.state.runs(module)
    waiting = tuple(r.request_id for r in runs if r.status is RunStatus.AWAITING_APPROVAL)
    outcome = runs[-1].status.value if runs else ""
    current = doc.current if doc else None
    behind = None
    if before is not None:
        # what serves here, in the terms of the environment before: the revision it was
        # promoted from, else (deployed here directly) its code
        mine = [e for e in env.state.history(module) if doc is not None and e.request_id == doc.request_id]
        origin = mine[-1].trigger.detail.get("from_revision", "") if mine else ""
        serving = current.code_digest if current else ""
        entries = [e for e in before.state.history(module) if e.outcome is RunStatus.SUCCEEDED]
        newer: list[str] = []
        for entry in reversed(entries):
            if entry.revision.id == origin or (not origin and entry.revision.code_digest == serving):
                break
            if entry.revision.id not in newer:
                newer.append(entry.revision.id)
        behind = len(newer)
    if current is None or doc is None:
        return Cell(outcome=outcome, awaiting_approval=waiting, behind=behind, behind_of=before_name)
    return Cell(current.id, current.code_digest, current.image_digest, doc.updated_at, outcome,
                waiting, behind, before_name)
