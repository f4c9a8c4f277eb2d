"""Rollback: the request that redeploys an earlier revision's image, without a rebuild.

The target is the named revision (an id or a unique prefix of one, from ``deployer history``) or,
by default, the last revision that succeeded before the current one. It is refused, with a clear
error, when its image is gone from the registry or its bundle (which holds its .env and
prefect.yaml) was cleaned up.
"""

from __future__ import annotations

from dataclasses import replace

from deployer.errors import NotFound, UsageError
from deployer.models import HistoryEntry, Intent, Request, RequestKind, Revision, RunStatus, Trigger
from deployer.names import unknown_module
from deployer.services import Services


def rollback_request(services: Services, module: str, to: str | None = None,
                     trigger: Trigger | None = None) -> Request:
    got = services.state.module(module)
    if got is None and not services.state.history(module):
        raise unknown_module(services, module)
    if got is None or got.value.current is None:
        raise NotFound(f"module {module} has no deployed revision to roll back from",
                       hint="`deployer status` lists the deployed modules")
    current = got.value.current
    history = services.state.history(module)
    succeeded = [e for e in history if e.outcome is RunStatus.SUCCEEDED]
    # a revision rolled back on its own is never the default target, but can be asked for by name
    named = [e for e in history if e.outcome in (RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK)]
    entry = _named(named, module, to) if to else _previous(succeeded, module, current.id)
    revision = entry.revision
    if not revision.image:  # a code-only revision recorded without one: its dependencies' image
        revision = replace(revision, image=_image_of_dependencies(history, revision))
    if not revision.image:
        raise NotFound(f"revision {revision.id} of {module} has no recorded image",
                       hint=f"deploy its bundle ({revision.bundle}) again, or pick another "
                       f"revision from `deployer history {module}`")
    image = services.builder.resolve(module, revision.image)
    if image is None:
        raise NotFound(f"cannot roll {module} back to {revision.id}: its image {revision.image} is "
                       "gone from the registry", hint=f"deploy that revision's bundle "
                       f"({revision.bundle}) again to rebuild it, or pick another revision from "
                       f"`deployer history {module}`")
    if services.bundles.info(revision.bundle) is None:
        raise NotFound(f"cannot roll {module} back to {revision.id}: its bundle {revision.bundle} "
                       "(with its .env and prefect.yaml) was cleaned up",
                       hint=f"pick another revision from `deployer history {module}`")
    now = services.now()
    request_id = Request.make_id("rollback", module, revision.id, current.id, now.isoformat())
    return Request(request_id, RequestKind.ROLLBACK, module,
                   trigger or Trigger("cli", f"rollback to {revision.id}",
                                      {"from": current.id, "to": revision.id}),
                   replace(revision, image=image.ref, image_digest=image.digest), now,
                   Intent(now, request_id))


def _image_of_dependencies(history: list[HistoryEntry], revision: Revision) -> str:
    """The newest image built from the same dependencies (what a code-only revision runs in)."""
    if not revision.deps_digest:
        return ""
    return next((e.revision.image for e in reversed(history) if e.revision.image
                 and e.revision.deps_digest == revision.deps_digest), "")


def _previous(entries: list[HistoryEntry], module: str, current_id: str) -> HistoryEntry:
    for entry in reversed(entries):
        if entry.revision.id != current_id:
            return entry
    raise NotFound(f"module {module} has no earlier successful revision to roll back to",
                   hint=f"`deployer history {module}` lists its revisions")


def _named(entries: list[HistoryEntry], module: str, to: str) -> HistoryEntry:
    matches = {e.revision.id: e for e in entries if e.revision.id.startswith(to)}
    if not matches:
        known = ", ".join(sorted({e.revision.id for e in entries})) or "none"
        raise NotFound(f"module {module} has no successful revision {to!r}",
                       hint=f"known revisions: {known}")
    if len(matches) > 1:
        raise UsageError(f"revision prefix {to!r} matches {len(matches)} revisions of {module}",
                         hint="give more characters: " + ", ".join(sorted(matches)))
    return list(matches.values())[-1]
