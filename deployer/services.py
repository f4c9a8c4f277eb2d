"""What every use case receives: the settings, the state, the ports (``deployer.ports``) and the
clock. ``deployer.bootstrap`` builds it; only entry points import that."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from deployer.bundle import BundleLimits
    from deployer.config import Settings
    from deployer.ports.agents import AgentRuntime
    from deployer.ports.code import CodeStore
    from deployer.ports.images import ImageBuilder
    from deployer.ports.notifications import Notifier
    from deployer.ports.orchestrator import DeploymentChecker, Orchestrator
    from deployer.ports.secrets import SecretResolver
    from deployer.ports.storage import BundleStore, RequestQueue
    from deployer.state import StateRepository


class Clock(Protocol):
    """Wall time (aware, UTC), monotonic time and sleep: injected, so that tests never wait for
    real and nothing but an adapter reads the system clock (``deployer.clock``)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class Services(Protocol):
    """What every use case receives: settings, state and the ports, plus the clock and sleep
    (injected, so that tests never wait for real). ``deployer.bootstrap`` builds it; only entry
    points import that."""

    @property
    def settings(self) -> Settings: ...

    @property
    def state(self) -> StateRepository: ...

    @property
    def bundles(self) -> BundleStore: ...

    @property
    def queue(self) -> RequestQueue: ...

    @property
    def builder(self) -> ImageBuilder: ...

    @property
    def runtime(self) -> AgentRuntime: ...

    @property
    def orchestrator(self) -> Orchestrator: ...

    @property
    def limits(self) -> BundleLimits: ...

    @property
    def checker(self) -> DeploymentChecker: ...

    @property
    def code(self) -> CodeStore: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def secrets(self) -> SecretResolver: ...

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...

    def in_environment(self, name: str) -> Services:
        """The services of another environment of the installation (``config.environments``):
        its own settings, state, agents and Prefect; the same bundles, queue, images and code.
        "" or this one's name: these."""
        ...


def each_environment(services: Services) -> list[Services]:
    """Every environment's services, in promotion order (the installation's only one when it
    has no environments): what the timers work through."""
    return [services.in_environment(e) for e in services.settings.environments] or [services]
