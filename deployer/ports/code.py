"""The code store: content-addressed code of revisions, which flow runs pull and verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class CodeStore(Protocol):
    """Content-addressed code of revisions, pulled by each flow run at its start (the
    deployments' pull steps), so that a code-only change needs no image and no new agent."""

    def requirement(self, requirements: bytes) -> str | None:
        """What an image needs so that flow runs can pull code from this store: None when
        ``requirements`` provide it, else a note saying what to add (the change then deploys
        the slow way)."""
        ...

    def publish(self, module: str, code_digest: str, source: Path) -> bool:
        """Store the module folder ``source`` (``.env`` never) as this code, with the deployer's
        check flow (``preflight.CHECK_FLOW``) and the code's manifest (``bundle.manifest``).
        A stored copy that verifies is kept (False); anything else there is replaced (True)."""
        ...

    def verify(self, module: str, code_digest: str) -> list[str]:
        """What is wrong with the stored copy (missing, incomplete, a file altered or added),
        as a flow run's verification step would find it; nothing when it is that code."""
        ...

    def exists(self, module: str, code_digest: str) -> bool: ...

    def pull_steps(self, module: str, code_digest: str, revision_id: str) -> list[dict[str, Any]]:
        """The deployment pull steps that fetch this code into a run's working directory and
        verify it against the digest before the flow is loaded (a mismatch fails the run,
        naming the module, ``revision_id`` and the file). They carry no secret: the agent
        fetches with its own identity."""
        ...

    def check_channel(self, agent: str) -> dict[str, Any]:
        """Where agent ``agent``'s warm checker looks for check requests (``preflight.CHECKER``):
        a place its own identity may read, named in its command line (no secret in it)."""
        ...

    def ask_check(self, agent: str, request_id: str, pull_steps: list[dict[str, Any]],
                  entrypoints: list[tuple[str, str]]) -> None:
        """Ask agent ``agent``'s warm checker to fetch code with ``pull_steps`` and load
        ``entrypoints``; its answer comes in the agent's log (``preflight.parse_check``)."""
        ...

    def end_check(self, agent: str, request_id: str) -> None:
        """Take the request away (answered, or given up); one already gone is no error."""
        ...

    def codes(self, module: str) -> list[str]:
        """The codes stored for the module, by short digest (``digest.short``)."""
        ...

    def delete(self, module: str, code_digest: str) -> None:
        """Remove a code (by full or short digest); a code already gone is no error."""
        ...
