"""Settings: read once from a mapping (the environment by default) into one frozen object.

Each setting is declared once, as a field of ``Settings``: its attribute and type, its name in
the environment, its parser (``values``), its default (None: required) and its description. From
those declarations come ``SETTINGS`` (the table the settings file, ``deployer dev`` and the docs
use), the "every problem at once" check of ``from_env``, and the checks that keep
``local.settings.json.example`` and the Bicep app settings equal to them (tests/unit/test_infra.py,
tests/unit/test_settings.py). Adding a setting is one field here.

Every missing or invalid value is reported in one ``ConfigError``. Secret values are wrapped in
``Secret`` so that ``repr(settings)`` and log lines never show them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from deployer.config import environments
from deployer.config import values as v
from deployer.config.rules import azure_rules, storage_rules
from deployer.config.values import MAX_STEP_SLICE_SECONDS, MIB, Secret
from deployer.errors import ConfigError

__all__ = ["MAX_STEP_SLICE_SECONDS", "MIB", "SETTINGS", "Secret", "Settings", "Spec", "read_one",
           "with_defaults"]


@dataclass(frozen=True)
class Spec:
    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None  # None: required
    description: str
    secret: bool = False
    backend: str | None = None  # required only for this backend
    #: may differ per environment (``DEPLOYER_ENV__<env>__<SETTING>``: ``config.environments``)
    per_environment: bool = False


def setting(env: str, parse: Callable[[str], Any], default: str | None, description: str, *,
            secret: bool = False, backend: str | None = None, per_environment: bool = False) -> Any:
    """One setting's declaration, as a field of ``Settings`` (its attribute is the field's)."""
    return field(metadata={"spec": Spec(env, "", parse, default, description, secret, backend,
                                        per_environment)})


@dataclass(frozen=True, repr=False)
class Settings:
    backend: str = setting("DEPLOYER_BACKEND", v.backend, "local",
        "where images and agents run: 'local' (uv venvs + worker processes) or 'azure'")
    storage_connection: Secret = setting("AzureWebJobsStorage", v.connection, "",
        "storage account connection string (Azurite locally); in Azure, leave it out and name"
        " the account with AzureWebJobsStorage__accountName (identity-only)", secret=True)
    storage_account_name: str = setting("AzureWebJobsStorage__accountName", v.account, "",
        "identity-only storage, as the Functions host reads it: the account whose blob and "
        "queue endpoints are used with the app's managed identity (shared keys may be off)")
    storage_blob_uri: str = setting("AzureWebJobsStorage__blobServiceUri", v.https_url, "",
        "identity-only storage: the blob endpoint, instead of the account name (sovereign "
        "clouds, private endpoints, Azurite over HTTPS)")
    storage_queue_uri: str = setting("AzureWebJobsStorage__queueServiceUri", v.https_url, "",
        "identity-only storage: the queue endpoint, with the blob one")
    storage_credential: str = setting("AzureWebJobsStorage__credential", v.storage_credential, "",
        "identity-only storage: 'managedidentity' (the host's word; DefaultAzureCredential is"
        " used either way, so az login works on a laptop)")
    storage_client_id: str = setting("AzureWebJobsStorage__clientId", v.text, "",
        "identity-only storage: the client id of a user-assigned identity (empty: the "
        "system-assigned one)")
    environments: tuple[str, ...] = setting("DEPLOYER_ENVIRONMENTS", environments.names, "",
        "the environments one installation serves, in promotion order (dev,prod); what differs "
        "per environment is DEPLOYER_ENV__<env>__<SETTING>; empty: one environment, 'default'")
    environment: str = setting("DEPLOYER_ENVIRONMENT", v.text, "",
        "the environment a command works in (the CLI's --env; empty: the first); the function "
        "app serves them all")
    approval: str = setting("DEPLOYER_APPROVAL", v.approval, "none",
        "who must approve a deploy, promotion or rollback into this environment before it "
        "starts: none, required (anyone) or required-other (someone other than the requester)",
        per_environment=True)
    auto_promote_from: str = setting("DEPLOYER_AUTO_PROMOTE_FROM", v.text, "",
        "an earlier environment whose revisions are promoted here on their own once their bake "
        "window passed there (empty: promotions are asked for)", per_environment=True)
    prefect_api_url: str = setting("PREFECT_API_URL", v.url, None,
        "Prefect API the agents and the deployer talk to", per_environment=True)
    prefect_api_key: Secret = setting("PREFECT_API_KEY", v.text, "",
        "Prefect Cloud API key (empty for a self-hosted server)", secret=True, per_environment=True)
    config_digest_key: Secret = setting("DEPLOYER_CONFIG_DIGEST_KEY", v.key, None,
        "secret key of the keyed hash over .env values", secret=True)
    bundles_container: str = setting("DEPLOYER_BUNDLES_CONTAINER", v.name, "bundles",
        "blob container that receives flow bundles (the blob trigger watches it)")
    state_container: str = setting("DEPLOYER_STATE_CONTAINER", v.name, "deployer-state",
        "blob container holding state documents, run records and locks", per_environment=True)
    request_queue: str = setting("DEPLOYER_REQUEST_QUEUE", v.name, "deploy-requests",
        "storage queue of pipeline requests")
    code_container: str = setting("DEPLOYER_CODE_CONTAINER", v.name, "deployer-code",
        "azure backend: blob container of revisions' code, which flow runs pull (agents need "
        "read access to it only)")
    max_bundle_mb: int = setting("DEPLOYER_MAX_BUNDLE_MB", v.positive_int, "200",
        "largest total uncompressed size of a bundle, in MiB")
    max_bundle_entries: int = setting("DEPLOYER_MAX_BUNDLE_ENTRIES", v.positive_int, "10000",
        "most entries (files and folders) in a bundle")
    max_compression_ratio: int = setting("DEPLOYER_MAX_COMPRESSION_RATIO", v.positive_int, "100",
        "highest uncompressed/compressed ratio of a bundle (zip-bomb guard)")
    lock_lease_seconds: int = setting("DEPLOYER_LOCK_LEASE_SECONDS", v.lease_seconds, "30",
        "blob lease length of a module lock; a crashed holder's lock frees after this")
    lock_wait_seconds: int = setting("DEPLOYER_LOCK_WAIT_SECONDS", v.lock_wait, "10",
        "how long a step waits for its module's step lock (another step holds it for at most "
        "one slice) before it puts its message back on the queue for a moment")
    step_slice_seconds: int = setting("DEPLOYER_STEP_SLICE_SECONDS", v.slice, "20",
        "the most one invocation spends waiting: shorter waits are slept in place, longer "
        "ones end the invocation with a delayed continuation message (host.json's "
        "functionTimeout allows for it)")
    home: str = setting("DEPLOYER_HOME", v.text, ".deployer",
        "local backend: folder for revision images, agent records and logs")
    venv_dir: str = setting("DEPLOYER_VENV_DIR", v.text, "",
        "local backend: where virtualenvs are kept, one per dependency digest, shared by "
        "every image with the same requirements (default: <DEPLOYER_HOME>/venvs)")
    agent_prefix: str = setting("DEPLOYER_AGENT_PREFIX", v.prefix, "agent",
        "agents are named <prefix>-<module>-<UTC timestamp> (the old deploy.sh naming)", per_environment=True)
    health_timeout_seconds: int = setting("DEPLOYER_HEALTH_TIMEOUT_SECONDS", v.positive_int, "600",
        "how long a new agent has to show ONLINE in Prefect before the deploy is rolled back "
        "(an ACI group pulls a ~1 GB Prefect image on a cold host: minutes, not seconds)",
        per_environment=True)
    drain_timeout_seconds: int = setting("DEPLOYER_DRAIN_TIMEOUT_SECONDS", v.positive_int, "86400",
        "the drain deadline: an old agent keeps its in-flight runs until they finish, or "
        "until this long after the cutover (only runaway runs are then marked crashed)", per_environment=True)
    bake_seconds: int = setting("DEPLOYER_BAKE_SECONDS", v.non_negative_int, "600",
        "after a cutover, how long the new revision's runs are watched while the previous "
        "agent stays ready to take over (0: no bake window)", per_environment=True)
    bake_runs: int = setting("DEPLOYER_BAKE_RUNS", v.positive_int, "3",
        "the bake window ends early once this many runs of the new revision have finished",
        per_environment=True)
    bake_failure_ratio: float = setting("DEPLOYER_BAKE_FAILURE_RATIO", v.ratio, "0.5",
        "a baking revision whose runs fail or crash more often than this (and more often than"
        " the previous revision's did) is rolled back on its own", per_environment=True)
    worker_poll_seconds: int = setting("DEPLOYER_WORKER_POLL_SECONDS", v.worker_poll, "10",
        "how often agents poll Prefect for runs (PREFECT_WORKER_QUERY_SECONDS; scheduled runs "
        "are fetched this long plus 10 s ahead, so a longer poll does not make them late)",
        per_environment=True)
    worker_heartbeat_seconds: int = setting("DEPLOYER_WORKER_HEARTBEAT_SECONDS", v.positive_int,
        "30", "how often agents tell Prefect they are alive (PREFECT_WORKER_HEARTBEAT_SECONDS; "
        "a worker is OFFLINE after three missed)", per_environment=True)
    webhook_token: Secret = setting("DEPLOYER_WEBHOOK_TOKEN", v.text, "",
        "shared secret the ACR webhook (or Event Grid) sends in the X-Deployer-Webhook-Token "
        "header; without it every webhook call is refused", secret=True)
    # -- notifications ---------------------------------------------------------------------------
    notify_urls: Secret = setting("DEPLOYER_NOTIFY_URLS", v.text, "",
        "apprise URLs (space or comma separated: slack://, msteams://, mailtos://, ntfy://, "
        "json:// ...) told of deploys that succeed, fail or roll back, superseded requests, "
        "cleanups that did something and unauthorised webhook storms; empty: none",
        secret=True, per_environment=True)
    notify_timeout_seconds: float = setting("DEPLOYER_NOTIFY_TIMEOUT_SECONDS", v.positive_float, "5",
        "longest a notification may hold up what it reports on; it is given up after that")
    public_url: str = setting("DEPLOYER_PUBLIC_URL", v.optional_url, "",
        "the function app's base URL (https://<app>.azurewebsites.net), for links in "
        "notifications; empty: https://$WEBSITE_HOSTNAME in Azure (the host name App Service "
        "gives the site), else no link to the deployer's status")
    dispatch_schedule: str = setting("DEPLOYER_DISPATCH_SCHEDULE", v.ncrontab, "*/10 * * * * *",
        "NCRONTAB (six fields, UTC) of the dispatcher that starts a container for each flow run "
        "of modules with isolation: run, and removes the ended ones (deployer.pipeline.per_run); "
        "a run starts within one period of its time")
    # -- cleanup ---------------------------------------------------------------------------------
    cleanup_schedule: str = setting("CLEANUP_SCHEDULE", v.ncrontab, "0 0 2 * * *",
        "NCRONTAB (six fields, UTC) of the nightly cleanup")
    keep_revisions: int = setting("DEPLOYER_KEEP_REVISIONS", v.positive_int, "5",
        "images of a module's last N revisions (and its newest N tags) are kept")
    rollback_window_days: int = setting("DEPLOYER_ROLLBACK_WINDOW_DAYS", v.non_negative_int, "14",
        "images and bundles of revisions deployed within this many days are kept (rollback)")
    retention_days: int = setting("DEPLOYER_RETENTION_DAYS", v.positive_int, "30",
        "bundles, run records and cleanup reports older than this may be deleted")
    keep_records: int = setting("DEPLOYER_KEEP_RECORDS", v.positive_int, "20",
        "the last N bundles and run records of each module are kept whatever their age")
    orphan_grace_hours: int = setting("DEPLOYER_ORPHAN_GRACE_HOURS", v.positive_int, "24",
        "an agent of a module the deployer does not know is deleted only after this long")
    aci_delete_quota: tuple[tuple[int, int], ...] = setting(
        "DEPLOYER_ACI_DELETE_QUOTA", v.quota, "100/300,300/3600",
        "container group deletions allowed per window: count/seconds pairs, comma-separated")
    cleanup_concurrency: int = setting("DEPLOYER_CLEANUP_CONCURRENCY", v.positive_int, "4",
        "deletions a cleanup runs at once")
    cleanup_budget_seconds: int = setting("DEPLOYER_CLEANUP_BUDGET_SECONDS", v.positive_int, "600",
        "a cleanup stops (and reports what is left for the next run) after this long")
    # -- azure backend ---------------------------------------------------------------------------
    subscription_id: str = setting("AZURE_SUBSCRIPTION_ID", v.text, None,
        "azure backend: the subscription of the registry and the agents", backend="azure")
    resource_group: str = setting("DEPLOYER_RESOURCE_GROUP", v.text, None,
        "azure backend: resource group of the agents' container groups", backend="azure",
        per_environment=True)
    location: str = setting("DEPLOYER_LOCATION", v.text, None,
        "azure backend: region of the agents' container groups (e.g. westeurope)", backend="azure",
        per_environment=True)
    registry: str = setting("DEPLOYER_REGISTRY", v.text, None,
        "azure backend: name of the Azure Container Registry that builds and holds images", backend="azure")
    registry_resource_group: str = setting("DEPLOYER_REGISTRY_RESOURCE_GROUP", v.text, "",
        "azure backend: resource group of the registry (default: DEPLOYER_RESOURCE_GROUP)")
    registry_login_server: str = setting("DEPLOYER_REGISTRY_LOGIN_SERVER", v.text, "",
        "azure backend: the registry's login server (default: <registry>.azurecr.io)")
    image_repository: str = setting("DEPLOYER_IMAGE_REPOSITORY", v.text, "prefect-flows",
        "azure backend: images are <registry>/<this>/<module>:<code digest>")
    agent_identity: str = setting("DEPLOYER_AGENT_IDENTITY", v.text, "",
        "azure backend: resource id of the user-assigned identity agents pull images with "
        "(AcrPull); without it, registry credentials are used", per_environment=True)
    agent_identity_client_id: str = setting("DEPLOYER_AGENT_IDENTITY_CLIENT_ID", v.text, "",
        "azure backend: that identity's client id, given to agents as AZURE_CLIENT_ID so that"
        " flow runs fetch their code from the code container with it", per_environment=True)
    registry_username: str = setting("DEPLOYER_REGISTRY_USERNAME", v.text, "",
        "azure backend: registry user for image pulls, only when no agent identity is set")
    registry_password: Secret = setting("DEPLOYER_REGISTRY_PASSWORD", v.text, "",
        "azure backend: registry password for image pulls, only when no agent identity is set",
        secret=True)
    agent_cpu: float = setting("DEPLOYER_AGENT_CPU", v.positive_float, "1",
        "azure backend: CPU cores of an agent container", per_environment=True)
    agent_memory_gb: float = setting("DEPLOYER_AGENT_MEMORY_GB", v.positive_float, "1.5",
        "azure backend: memory of an agent container, in GB", per_environment=True)
    build_timeout_seconds: int = setting("DEPLOYER_BUILD_TIMEOUT_SECONDS", v.build_timeout, "3600",
        "azure backend: an ACR Tasks build is cancelled after this long (ACR accepts "
        "300-28800)")
    fast_deploys: bool = setting("DEPLOYER_FAST_DEPLOYS", v.switch, "on",
        "'on': a change of code alone is published to the code store and re-registered (no "
        "build, no new agent); 'off': every change builds an image and rotates")
    base_image_registry: str = setting("DEPLOYER_BASE_IMAGE_REGISTRY", v.text, "",
        "azure backend: passed to builds as --build-arg DEPLOYER_REGISTRY, for Dockerfiles "
        "that take their base image FROM ${DEPLOYER_REGISTRY}/prefecthq/prefect (azd sets the"
        " app's registry, whose cache rule serves Docker Hub's image; empty: no argument)")
    build_cache: bool = setting("DEPLOYER_BUILD_CACHE", v.switch, "on",
        "azure backend: 'on' builds with ACR Tasks' layer cache (a task whose build step has "
        "cache: enabled), 'off' as a plain quick build")
    #: the environment (a mapping) the settings were read from: ``for_environment`` reads it
    #: again; never shown (``__repr__`` shows the settings alone)
    source: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 environment: str | None = None) -> Settings:
        """The settings of ``environment`` (by default DEPLOYER_ENVIRONMENT, else the first of
        DEPLOYER_ENVIRONMENTS): the installation's, with that environment's own on top."""
        source = os.environ if environ is None else environ
        env, chosen = environments.apply(source, environment, PER_ENVIRONMENT)
        env["DEPLOYER_ENVIRONMENT"] = chosen
        values: dict[str, Any] = {"source": dict(source)}
        problems: list[str] = []
        backend = env.get("DEPLOYER_BACKEND") or "local"
        for spec in SETTINGS:
            raw = env.get(spec.env)
            if raw is None or raw == "":
                if spec.default is None and spec.backend in (None, backend):
                    problems.append(f"{spec.env} is missing: {spec.description}")
                    continue
                raw = spec.default or ""
                if raw == "":
                    values[spec.attr] = Secret("") if spec.secret else ""
                    continue
            if raw.lstrip().startswith(KEY_VAULT_REFERENCE):
                # App Service left the reference unresolved: its identity could not read it
                problems.append(f"{spec.env} is an unresolved Key Vault reference: App Service "
                                "passes the literal @Microsoft.KeyVault(...) text when the app's "
                                "identity cannot read the secret (no Key Vault Secrets User role "
                                "yet, a wrong vault or secret name); the app's 'Environment "
                                "variables' page says why for each setting")
                continue
            try:
                value = spec.parse(raw)
            except ValueError as exc:
                shown = "" if spec.secret else f" (got {raw!r})"
                problems.append(f"{spec.env} {exc}{shown}")
                continue
            values[spec.attr] = Secret(value) if spec.secret else value
        if not values.get("public_url") and env.get("WEBSITE_HOSTNAME"):
            # App Service names the site's host itself (not always <app>.azurewebsites.net)
            values["public_url"] = f"https://{env['WEBSITE_HOSTNAME']}"
        problems.extend(storage_rules(env))
        problems.extend(environments.value_problems(source, chosen, PER_ENVIRONMENT, SETTINGS))
        if backend == "azure":
            problems.extend(azure_rules(env))
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def __repr__(self) -> str:
        """Secrets hidden (``Secret``), and no credential a URL setting carries."""
        from deployer.urls import mask_text

        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                          if "spec" in f.metadata)
        return mask_text(f"Settings({shown})")

    def for_environment(self, name: str) -> Settings:
        """The settings of another environment of the same installation."""
        return Settings.from_env(self.source, environment=name)

    @property
    def environment_name(self) -> str:
        """The environment's name for people: ``default`` without DEPLOYER_ENVIRONMENTS."""
        return self.environment or environments.DEFAULT

    @property
    def legacy_agents(self) -> bool:
        """This environment owns the agents made before the installation had environments
        (``environments.legacy``): untagged container groups, the old local agents folder."""
        return not self.environment or environments.legacy(self.source, self.state_container)

    @property
    def agents_home(self) -> Path:
        """Local agents' records: one folder per environment (images and code are shared)."""
        return self.home_path / "environments" / self.environment \
            if self.environment and not self.legacy_agents else self.home_path

    def prefect_env(self) -> tuple[dict[str, str], dict[str, str]]:
        """(secret, plain) variables that let a container (an agent, a run's) reach Prefect: the
        key is a secret, and so is an API URL with a credential in it (userinfo, a token)."""
        from deployer.urls import has_credentials

        secrets: dict[str, str] = {}
        plain: dict[str, str] = {}
        if self.prefect_api_key.reveal():
            secrets["PREFECT_API_KEY"] = self.prefect_api_key.reveal()
        (secrets if has_credentials(self.prefect_api_url) else plain)["PREFECT_API_URL"] = \
            self.prefect_api_url
        return secrets, plain

    @property
    def storage_identity(self) -> bool:
        """Whether storage is reached with a token (identity-only) rather than a shared key."""
        return not self.storage_connection.reveal()

    @property
    def blob_service_url(self) -> str:
        return self.storage_blob_uri or f"https://{self.storage_account_name}.blob.core.windows.net"

    @property
    def queue_service_url(self) -> str:
        return self.storage_queue_uri or f"https://{self.storage_account_name}.queue.core.windows.net"

    @property
    def registry_server(self) -> str:
        return self.registry_login_server or f"{self.registry}.azurecr.io"

    @property
    def registry_group(self) -> str:
        return self.registry_resource_group or self.resource_group

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def venv_path(self) -> Path:
        return Path(self.venv_dir).expanduser().resolve() if self.venv_dir else self.home_path / "venvs"



#: what App Service leaves in a setting whose Key Vault reference it could not resolve
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("

#: every setting, in declaration order: the one table derived from ``Settings``' fields
SETTINGS: tuple[Spec, ...] = tuple(replace(f.metadata["spec"], attr=f.name) for f in fields(Settings)
                                   if "spec" in f.metadata)
_BY_ATTR = {s.attr: s for s in SETTINGS}
#: the settings that may differ per environment, by full name and without ``DEPLOYER_``
PER_ENVIRONMENT: dict[str, str] = {
    **{s.env: s.env for s in SETTINGS if s.per_environment},
    **{s.env.removeprefix("DEPLOYER_"): s.env for s in SETTINGS if s.per_environment}}


def with_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with every setting that has a default filled in: what a host needs to resolve
    binding expressions like ``%DEPLOYER_REQUEST_QUEUE%`` the way the deployer reads them."""
    merged = dict(environ)
    for spec in SETTINGS:
        if spec.default:
            merged.setdefault(spec.env, spec.default)
    return merged


def read_one(environ: Mapping[str, str], attr: str) -> Any:
    """One setting, for commands that need only it (``deployer bundle`` needs only the key)."""
    spec = _BY_ATTR[attr]
    raw = environ.get(spec.env) or spec.default
    if not raw:
        raise ConfigError([f"{spec.env} is missing: {spec.description}"])
    try:
        value = spec.parse(raw)
    except ValueError as exc:
        raise ConfigError([f"{spec.env} {exc}"]) from exc
    return Secret(value) if spec.secret else value
