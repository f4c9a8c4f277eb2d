"""The composition root: the one place that chooses adapters. Settings in, ``AppServices`` (an
implementation of ``ports.Services``) out. Only entry points import this module: the function
app, the CLI, ``deployer dev`` and the demo; use cases receive their services as an argument.

Clients are built lazily and once per process: the blob trigger never pays for importing the
Prefect client, and nothing here runs at import time.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from deployer.adapters.system_clock import SYSTEM_CLOCK
from deployer.bundle import BundleLimits
from deployer.config import MIB, Settings
from deployer.ports.agents import AgentRuntime
from deployer.ports.code import CodeStore
from deployer.ports.images import ImageBuilder
from deployer.ports.notifications import NoNotifier, Notifier
from deployer.ports.orchestrator import DeploymentChecker, Orchestrator
from deployer.ports.secrets import SecretResolver
from deployer.ports.storage import BundleStore, RequestQueue
from deployer.state import StateRepository


class AppServices:
    """The ports the use cases need. Adapters not given are built from settings on first use."""

    def __init__(self, settings: Settings, state: StateRepository, bundles: BundleStore,
                 queue: RequestQueue, *, builder: ImageBuilder | None = None,
                 runtime: AgentRuntime | None = None, orchestrator: Orchestrator | None = None,
                 checker: DeploymentChecker | None = None, code: CodeStore | None = None,
                 notifier: Notifier | None = None, azure: Any = None,
                 secrets: SecretResolver | None = None,
                 sleep: Callable[[float], None] = SYSTEM_CLOCK.sleep,
                 now: Callable[[], datetime] = SYSTEM_CLOCK.now) -> None:
        self.settings = settings
        self._blob_code: CodeStore | None = None
        self.state = state
        self.bundles = bundles
        self.queue = queue
        self.sleep = sleep
        self.now = now
        if builder is not None:
            self.__dict__["builder"] = builder
        if runtime is not None:
            self.__dict__["runtime"] = runtime
        if orchestrator is not None:
            self.__dict__["orchestrator"] = orchestrator
        if checker is not None:
            self.__dict__["checker"] = checker
        if code is not None:
            self.__dict__["code"] = code
        if notifier is not None:
            self.__dict__["notifier"] = notifier
        if azure is not None:
            self.__dict__["azure"] = azure
        if secrets is not None:
            self.__dict__["secrets"] = secrets

    def in_environment(self, name: str) -> AppServices:
        if not name or name == self.settings.environment:
            return self
        siblings = self.__dict__.setdefault("_siblings", {self.settings.environment: self})
        if name not in siblings:
            made = (self.environment_factory or self._sibling)(name)
            made.__dict__["_siblings"] = siblings
            made.environment_factory = self.environment_factory
            siblings[name] = made
        sibling: AppServices = siblings[name]
        return sibling

    #: how another environment's services are made (tests give their fakes); None: from settings
    environment_factory: Callable[[str], AppServices] | None = None

    def _sibling(self, name: str) -> AppServices:
        """Another environment's services: its settings and state container (and, built from
        them on first use, its agents and Prefect); this one's bundles, queue, images, code,
        secrets and clock."""
        from deployer.adapters.storage import storage_from

        settings = self.settings.for_environment(name)
        storage = storage_from(settings)
        state = StateRepository(storage.documents, lease_seconds=settings.lock_lease_seconds,
                                lock_wait_seconds=settings.lock_wait_seconds)
        return AppServices(settings, state, self.bundles, self.queue, builder=self.builder,
                           code=self.code, secrets=self.secrets, sleep=self.sleep, now=self.now)

    @property
    def limits(self) -> BundleLimits:
        return limits_from(self.settings)

    @functools.cached_property
    def builder(self) -> ImageBuilder:
        if self.settings.backend == "local":
            from deployer.adapters.local_images import LocalImageBuilder

            return LocalImageBuilder(self.settings.home_path, venvs=self.settings.venv_path)
        from deployer.adapters.acr_builder import AcrImageBuilder

        return AcrImageBuilder(self.azure)

    @functools.cached_property
    def runtime(self) -> AgentRuntime:
        if self.settings.backend == "local":
            from deployer.adapters.local_agents import LocalAgentRuntime

            return LocalAgentRuntime(self.settings.agents_home)
        from deployer.adapters.aci_runtime import AciAgentRuntime

        return AciAgentRuntime(self.azure)

    @functools.cached_property
    def azure(self) -> Any:
        """The Azure SDK clients (azure backend), built on first use."""
        from deployer.adapters.azure_clients import AzureClients

        return AzureClients(self.settings)

    @functools.cached_property
    def code(self) -> CodeStore:
        """Where code-only revisions live: the local image store, or (azure) the deployer's
        storage, which ``build`` provides."""
        if self.settings.backend == "local" or self._blob_code is None:
            from deployer.adapters.local_code import LocalCodeStore

            return LocalCodeStore(self.settings.home_path)
        return self._blob_code

    @functools.cached_property
    def notifier(self) -> Notifier:
        urls = self.settings.notify_urls.reveal()
        if not urls.strip():
            return NoNotifier()
        from deployer.adapters.apprise_notifier import AppriseNotifier

        return AppriseNotifier(urls, timeout=self.settings.notify_timeout_seconds)

    @functools.cached_property
    def secrets(self) -> SecretResolver:
        """Key Vault references in .env, read with the app's identity (or az login)."""
        from deployer.adapters.keyvault_secrets import KeyVaultSecretResolver

        return KeyVaultSecretResolver()

    @functools.cached_property
    def checker(self) -> DeploymentChecker:
        return deployment_checker()

    @functools.cached_property
    def orchestrator(self) -> Orchestrator:
        from deployer.adapters.prefect_orchestrator import PrefectOrchestrator

        return PrefectOrchestrator(self.settings.prefect_api_url,
                                   self.settings.prefect_api_key.reveal())


def deployment_checker() -> DeploymentChecker:
    """The orchestrator's own checks of prefect.yaml schedules (for `deployer validate`)."""
    from deployer.adapters.prefect_deployments import PrefectDeploymentChecker

    return PrefectDeploymentChecker()


def limits_from(settings: Settings) -> BundleLimits:
    return BundleLimits(max_bytes=settings.max_bundle_mb * MIB,
                        max_entries=settings.max_bundle_entries,
                        max_ratio=settings.max_compression_ratio)


def build(settings: Settings, *, interactive: bool = False) -> AppServices:
    from deployer.adapters.storage import storage_from

    storage = storage_from(settings, interactive=interactive)
    state = StateRepository(storage.documents, lease_seconds=settings.lock_lease_seconds,
                            lock_wait_seconds=settings.lock_wait_seconds)
    services = AppServices(settings=settings, state=state, bundles=storage.bundles,
                           queue=storage.queue)
    services._blob_code = storage.code
    return services


_installed: AppServices | None = None


def install(services: AppServices | None) -> None:
    """Make ``services`` the process-wide services, instead of building them from the
    environment (for embedding the function app, and for tests that host it in-process)."""
    global _installed
    _installed = services


def services_from_environment() -> AppServices:
    """The process-wide services of the Functions app, built on first use."""
    return _installed if _installed is not None else _from_environment()


@functools.cache
def _from_environment() -> AppServices:
    from deployer.adapters import azure_monitor

    azure_monitor.configure(os.environ)  # spans to Application Insights, when it is set
    return build(Settings.from_env(os.environ))
