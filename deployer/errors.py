"""The deployer's error tree.

Every error the deployer raises on purpose is a ``DeployerError``; entry points turn it into an
exit code (CLI), a status code (HTTP) or a failed run record (queue). Adapters translate SDK
exceptions into these once, at the boundary, with ``raise X(...) from exc``.

    DeployerError                                                        transient
    ├── ConfigError          settings missing or invalid (every problem)   no
    ├── UsageError           a command was called wrongly (exit 2)         no
    ├── BundleInvalid        a bundle or module folder broke the contract  no
    ├── RevisionRefused      a revision rolled back on its own, asked for  no
                             again by a push or a re-upload
    ├── NotFound             a module, revision, run or blob is missing    no
    ├── StateError           the state store                               no
    │   ├── StateConflict    a conditional write lost a race               yes
    │   ├── StateCorrupt     a document failed validation on read          no
    │   └── LockBusy         a lock could not be acquired in time          yes
    ├── UpstreamError        storage, Prefect or Azure failed/unreachable  yes
    │   └── UpstreamRefused  it refused the request as made (4xx, payload)  no
    ├── BuildFailed          an image could not be built (log tail)        no
    ├── AgentUnhealthy       a new agent did not come ONLINE, or died      no
    └── HealthCheckFailed    a rung of the health ladder failed (READY,    no
                             a smoke run)

Messages say what failed and where; ``hint`` says what to do next. Neither ever carries a secret.

Whether a failure is worth another attempt is a property of its class, ``transient``: the
pipeline retries transient failures (the queue redelivers the step) and fails a request at once
on the others. An exception that is not a ``DeployerError`` is a bug or an untranslated SDK
error; it is retried like a transient one, and the last attempt records it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deployer.urls import mask_text


class DeployerError(Exception):
    """Base of every error the deployer raises on purpose."""

    #: a short, stable name for run records and JSON output
    code = "deployer_error"
    #: whether another attempt may succeed (see the module docstring)
    transient = False

    def __init__(self, message: str, *, hint: str | None = None, log_tail: str = "") -> None:
        # a URL may carry a credential (a setting's userinfo, a SAS): never in an error
        message = mask_text(message)
        super().__init__(message)
        self.message = message
        self.hint = mask_text(hint) if hint else hint
        #: the end of a build or agent log, when that is where the cause is
        self.log_tail = mask_text(log_tail)

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
        return f"{text}\n--- log (tail) ---\n{self.log_tail}" if self.log_tail else text

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.log_tail:
            out["log_tail"] = self.log_tail
        return out


class ConfigError(DeployerError):
    code = "config_error"

    def __init__(self, problems: Iterable[str], *, message: str = "", hint: str = "") -> None:
        self.problems = [mask_text(p) for p in problems]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(
            message or f"invalid configuration ({count} problem{'' if count == 1 else 's'}):\n{lines}",
            hint=hint or "set these in the environment or in local.settings.json "
            "(see local.settings.json.example)",
        )

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "problems": list(self.problems)}


class UsageError(DeployerError):
    code = "usage_error"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a bundle: where (file, line) and what. Never quotes a secret."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message}


class BundleInvalid(DeployerError):
    code = "bundle_invalid"

    def __init__(self, problems: Sequence[Problem], *, source: str = "bundle",
                 hint: str = "fix the files above and run `deployer validate` on the folder again",
                 ) -> None:
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.message))
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{source} is invalid ({count} problem{'' if count == 1 else 's'}):\n{lines}",
                         hint=hint)

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["problems"] = [p.to_dict() for p in self.problems]
        return out


class RevisionRefused(DeployerError):
    code = "revision_refused"


class NotFound(DeployerError):
    code = "not_found"


class StateError(DeployerError):
    code = "state_error"


class StateConflict(StateError):
    code = "state_conflict"
    transient = True


class StateCorrupt(StateError):
    code = "state_corrupt"


class LockBusy(StateError):
    code = "lock_busy"
    transient = True


class UpstreamError(DeployerError):
    code = "upstream_error"
    transient = True


class UpstreamRefused(UpstreamError):
    """A service refused the request as it was made (its payload, its names): the same request
    is refused again, so it is never retried."""

    code = "upstream_refused"
    transient = False


class ProviderNotRegistered(UpstreamError):
    """The subscription has not registered a resource provider the deployer needs: no retry
    helps until someone with subscription rights registers it."""

    code = "provider_not_registered"
    transient = False


class SecretUnavailable(DeployerError):
    """A Key Vault reference of ``.env`` cannot be read: the message names the key's secret and
    vault, never a value."""

    code = "secret_unavailable"


class BuildFailed(DeployerError):
    code = "build_failed"


class AgentUnhealthy(DeployerError):
    code = "agent_unhealthy"


class HealthCheckFailed(DeployerError):
    code = "health_check_failed"


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: a transient ``DeployerError``, or anything that is not one."""
    return exc.transient if isinstance(exc, DeployerError) else True
