"""Names people type (modules, deployments, commands, folders) that match none: the error says
which ones exist and, when one is close, "did you mean ...?" (as git and cargo do)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from deployer.errors import NotFound

if TYPE_CHECKING:
    from deployer.services import Services

#: how many known names an error lists before "..."
LISTED = 20


def closest(given: str, known: Iterable[str]) -> str | None:
    """The known name ``given`` is most likely a typo of, if one is close enough."""
    found = difflib.get_close_matches(given, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def with_suggestion(given: str, known: Iterable[str], hint: str, *, prefix: str = "") -> str:
    """``hint``, led by "did you mean ...?" when a known name is close to ``given``."""
    near = closest(given, known)
    return f"did you mean {prefix}{near}? {hint}" if near else hint


def listed(names: Iterable[str]) -> str:
    ordered = sorted(set(names))
    if not ordered:
        return "none yet"
    return ", ".join(ordered[:LISTED]) + (" ..." if len(ordered) > LISTED else "")


def unknown_module(services: Services, name: str) -> NotFound:
    """A module the state has no document, run or history of: a failure (exit 1), with the
    names it does know and the one ``name`` may be a typo of."""
    known = {m.module for m in services.state.modules()} | {r.module for r in services.state.runs()}
    return NotFound(f"no module {name!r} in the deployer's state",
                    hint=with_suggestion(name, known, f"known modules: {listed(known)}"))
