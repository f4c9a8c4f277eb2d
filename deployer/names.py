"""Names people type (modules, deployments, commands, folders) that match none: the error says
which ones exist and, when one is close, "did you mean ...?" (as git and cargo do)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deployer.errors import NotFound, UsageError

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


def unknown_module(services: Any, name: str) -> NotFound:
    """A module the state has no document, run or history of: a failure (exit 1), with the
    names it does know and the one ``name`` may be a typo of. (``services``: the use cases'
    ``Services``; named loosely, as the bundle layer below it uses this module too.)"""
    known = {m.module for m in services.state.modules()} | {r.module for r in services.state.runs()}
    return NotFound(f"no module {name!r} in the deployer's state",
                    hint=with_suggestion(name, known, f"known modules: {listed(known)}"))


def module_folder(path: Path) -> Path:
    """``path`` when it is a folder; else a usage error saying what it is, and the folder it may
    be a typo of (a sibling with a close name, or ``flows/<name>`` for a bare name)."""
    if path.is_dir():
        return path
    if path.exists():
        raise UsageError(f"{path} is a file, not a module folder",
                         hint="give the flows/<module> folder (validate also takes an archive)")
    flows = Path("flows") / path.name
    if not path.is_absolute() and len(path.parts) == 1 and flows.is_dir():
        near: str | None = str(flows)  # `deployer validate finance` run where flows/ is
    else:
        parent = path.parent
        known = [str(c) for c in parent.iterdir() if c.is_dir() and not c.name.startswith(".")] \
            if parent.is_dir() else []
        near = closest(str(path), known)
    hint = "give a flows/<module> folder" + (f"; did you mean {near}?" if near else "")
    raise UsageError(f"{path} does not exist", hint=hint)
