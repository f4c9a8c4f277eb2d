"""Agents: the long-lived containers (or local processes) running a module's Prefect worker;
and the short-lived ones the same runtime starts for a module with ``isolation: run``: one per
flow run (``Role.RUN``) and one that proves a revision's flows load (``Role.CHECK``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from deployer.ports.images import Image


class Role(StrEnum):
    AGENT = "agent"  # a worker, always on (restart Always on ACI)
    RUN = "run"  # one flow run: ``python -m prefect.engine``, then it ends (restart Never)
    CHECK = "check"  # the preflight alone: loads the revision's flows, says so, ends


class AgentState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"  # exited, terminated or being deleted
    FAILED = "failed"


@dataclass(frozen=True)
class AgentSpec:
    name: str
    module: str
    revision_id: str
    image: Image
    pool: str
    queue: str
    env: dict[str, str] = field(repr=False)  # .env values: secrets
    settings: dict[str, str] = field(default_factory=dict)  # non-secret agent settings
    #: (deployment, entrypoint) pairs the agent loads before its worker starts (``preflight``)
    entrypoints: tuple[tuple[str, str], ...] = ()
    #: the pull steps the preflight runs first, when flow runs pull their code (code store)
    pull_steps: tuple[dict[str, Any], ...] = ()
    #: the image's own ENTRYPOINT, put back in front of the command (``bundle.entrypoint``)
    entrypoint: tuple[str, ...] = ()
    #: where its warm checker looks for check requests (``CodeStore.check_channel``); empty: none
    checks: dict[str, Any] = field(default_factory=dict)
    #: vCPU and GB the agent is made with (``bundle.sizing``); 0: the runtime's default
    cpu: float = 0.0
    memory_gb: float = 0.0
    role: Role = Role.AGENT
    flow_run_id: str = ""  # the run a ``Role.RUN`` container runs

    def __repr__(self) -> str:
        return (f"AgentSpec(name={self.name!r}, role={self.role.value!r}, "
                f"revision={self.revision_id!r}, queue={self.queue!r}, "
                f"env_keys={sorted(self.env)!r})")


@dataclass(frozen=True)
class AgentInfo:
    name: str
    module: str
    revision_id: str
    queue: str
    state: AgentState
    started_at: datetime | None
    detail: str = ""  # pid / provisioning state, for people
    role: Role = Role.AGENT
    flow_run_id: str = ""


class AgentRuntime(Protocol):
    #: how long a new agent usually takes until its worker is ONLINE (paces the looks)
    expected_start_seconds: float

    def start(self, spec: AgentSpec) -> AgentInfo:
        """Start the agent without waiting for it; starting one that already exists (same name)
        returns it instead of starting a second."""
        ...

    def get(self, name: str) -> AgentInfo | None: ...

    def list(self, module: str | None = None, *, detailed: bool = True,
             role: Role = Role.AGENT) -> list[AgentInfo]:
        """The agents (of ``module``), or the containers of another ``role``. ``detailed=False``
        may skip per-agent reads: the state is then only what a listing shows (provisioning
        state for ACI), enough for cleanup."""
        ...

    def stop(self, name: str) -> None:
        """Stop and remove the agent (graceful, then forced); a missing agent is not an error."""
        ...

    def logs(self, name: str, tail: int = 50) -> str: ...
