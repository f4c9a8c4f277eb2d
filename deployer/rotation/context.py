"""What every handler gets: the request, its plan, its run record (through the tracker), its
bundle (read once per invocation) and the services; and what several handlers derive from them:
the revision's image, how its runs get their code, its ``.env`` with Key Vault values read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from deployer import codec, preflight
from deployer.bundle.contract import DOCKERFILE
from deployer.bundle.prefect_yaml import PREFECT_YAML
from deployer.errors import AgentUnhealthy, BundleInvalid, Problem
from deployer.models import Request
from deployer.ports.images import Image
from deployer.revisions import secret_pins
from deployer.revisions.source import RevisionSource
from deployer.rotation.operations import BuildImage, Operation, PublishCode, ReuseImage
from deployer.rotation.results import ImageReady, Result
from deployer.rotation.tracker import RunTracker
from deployer.services import Services

R = TypeVar("R", bound=Result)


@dataclass
class Context:
    s: Services
    request: Request
    t: RunTracker
    source: RevisionSource
    plan: tuple[Operation, ...]
    _env_values: dict[str, str] | None = field(default=None, repr=False)

    @property
    def module(self) -> str:
        return self.request.module

    @property
    def pool(self) -> str:
        return self.request.module  # one process work pool per module

    def result(self, kind: type[Operation], cls: type[R]) -> R | None:
        return result_of(self.t, self.plan, kind, cls)

    def image(self) -> Image:
        """The revision's image: built or reused by this plan, or (a code-only revision) the
        one the serving revision runs in."""
        ready = self.result(BuildImage, ImageReady) or self.result(ReuseImage, ImageReady)
        if ready is not None:
            return ready.image
        if not any(isinstance(op, BuildImage | ReuseImage) for op in self.plan):
            got = self.s.state.module(self.module)
            current = got.value.current if got else None
            if current is not None:
                return Image(ref=current.image, working_dir="", digest=current.image_digest)
        raise AssertionError("no image stage finished before it was needed")

    def pulls_code(self) -> bool:
        """Whether this revision's flow runs pull its code from the code store."""
        return any(isinstance(op, PublishCode) for op in self.plan)

    def pull_steps(self) -> list[dict[str, Any]]:
        """How a flow run of this revision gets its code: from the code store (verified), or
        from the image it runs in."""
        if self.pulls_code():
            revision = self.request.revision
            return self.s.code.pull_steps(self.module, revision.code_digest, revision.id)
        return self.image().pull_steps()

    def since(self, op: Operation) -> timedelta:
        stage = self.t.record.stage(op.key)
        return self.s.now() - stage.started_at if stage is not None else timedelta()

    def env_values(self) -> dict[str, str]:
        """The module's .env with its (pinned) Key Vault references read: what the agent gets."""
        if self._env_values is None:
            self._env_values = secret_pins.resolve(self.source.module.env.as_dict(), self.s.secrets)
        return self._env_values

    def secrets(self) -> list[str]:
        """What must never be shown: the .env values and the Prefect key (user code may print
        what it read, into a log or a run's message)."""
        return [*self.env_values().values(), self.s.settings.prefect_api_key.reveal()]

    def dockerfile(self) -> bytes | None:
        path = self.source.module.root / DOCKERFILE
        return path.read_bytes() if path.is_file() else None

    def unhealthy(self, agent: str, what: str, hint: str = "") -> AgentUnhealthy:
        return AgentUnhealthy(f"agent {agent} {what}", log_tail=self.s.runtime.logs(agent),
                              hint=hint or "the agent's log tail shows why; the old agent keeps "
                              "serving")

    def not_loading(self, results: list[dict[str, Any]]) -> BundleInvalid:
        """The preflight's findings of entrypoints that do not load, as problems of the bundle."""
        secrets = self.secrets()
        failed = [r for r in results if not r.get("ok")]
        hint = ("its flows are loaded where they will run (its image and its .env), which "
                "`deployer validate` cannot do: fix the code and deploy again; what serves is "
                "untouched")
        if any(r.get("exception") == "KeyError" for r in failed):
            hint = ("a KeyError while loading is often an environment variable .env does not set "
                    "(read at import): add it to .env, or read it with a default; " + hint)
        return BundleInvalid([Problem(
            str(r.get("file") or PREFECT_YAML), r.get("line"), preflight.redact(
                f"deployment {r.get('deployment')!r}: {r.get('exception')}: {r.get('message')} "
                f"(loading {r.get('entrypoint')} in the revision's own environment)", secrets))
            for r in failed], source=f"revision {self.request.revision.id} of {self.module}",
            hint=hint)


def result_of(tracker: RunTracker, plan: Sequence[Operation], kind: type[Operation],
              cls: type[R]) -> R | None:
    """The typed result of the plan's (first) finished operation of ``kind``, else None."""
    for op in plan:
        if isinstance(op, kind):
            done = tracker.done(op.key)
            if done is not None:
                return codec.loads_data(cls, done, where=f"stage {op.key}")
    return None
