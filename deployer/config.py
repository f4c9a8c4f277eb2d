"""Settings: read once from a mapping (the environment by default) into one frozen object.

Every missing or invalid value is reported in one ``ConfigError``. Secret values are wrapped in
``Secret`` so that ``repr(settings)`` and log lines never show them. ``SETTINGS`` is the one table
of names; ``local.settings.json.example`` lists exactly these (a test checks it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deployer.errors import ConfigError

MIB = 1024 * 1024


class Secret:
    """A value that must never be printed. ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Spec:
    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None  # None: required
    description: str
    secret: bool = False
    backend: str | None = None  # required only for this backend


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _build_timeout(raw: str) -> int:
    value = int(raw)
    if not 300 <= value <= 28800:  # the run request's timeout range (ACR Tasks' REST contract)
        raise ValueError("must be between 300 and 28800 seconds (what ACR Tasks accepts)")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _lease_seconds(raw: str) -> int:
    value = int(raw)
    if not 15 <= value <= 60:
        raise ValueError("must be between 15 and 60 (Azure blob lease limits)")
    return value


#: a step's slice must leave the invocation time for its own work (host.json's functionTimeout)
MAX_STEP_SLICE_SECONDS = 120


def _slice(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_STEP_SLICE_SECONDS:
        raise ValueError(f"must be between 1 and {MAX_STEP_SLICE_SECONDS} seconds")
    return value


def _lock_wait(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 60:
        raise ValueError("must be between 0 and 60 seconds")
    return value


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise ValueError("must be a ratio from 0 to below 1 (0.5: more than half of the runs)")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _quota(raw: str) -> tuple[tuple[int, int], ...]:
    windows = []
    for part in raw.split(","):
        count, _, seconds = part.strip().partition("/")
        if not count.isdigit() or not seconds.isdigit() or int(count) == 0 or int(seconds) == 0:
            raise ValueError("must be count/seconds pairs like 100/300,300/3600")
        windows.append((int(count), int(seconds)))
    return tuple(windows)


def _ncrontab(raw: str) -> str:
    from deployer.ncrontab import parse

    parse(raw)  # raises ValueError naming the problem
    return raw


def _backend(raw: str) -> str:
    if raw not in ("local", "azure"):
        raise ValueError("must be 'local' or 'azure'")
    return raw


def _key(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters (it keys the config digest)")
    return raw


def _url(raw: str) -> str:
    try:
        url = urlsplit(raw.strip())
        url.port  # noqa: B018  (raises for a port out of range)
    except ValueError as exc:
        raise ValueError(f"must be an http(s) URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("must be an http(s) URL with a host, like http://127.0.0.1:4200/api")
    return raw.strip().rstrip("/")


def _optional_url(raw: str) -> str:
    return _url(raw) if raw.strip() else ""


def _account(raw: str) -> str:
    value = raw.strip()
    if not (3 <= len(value) <= 24 and value.isalnum() and value == value.lower()):
        raise ValueError("must be a storage account name: 3-24 lowercase letters and digits")
    return value


def _https_url(raw: str) -> str:
    value = _url(raw)
    if not value.startswith("https://"):
        raise ValueError("must be an https URL (bearer tokens are sent over HTTPS only)")
    return value


def _storage_credential(raw: str) -> str:
    value = raw.strip().lower()
    if value != "managedidentity":
        raise ValueError("must be 'managedidentity' (or left out)")
    return value


def _connection(raw: str) -> str:
    from deployer import connection_string

    connection_string.parse(raw)
    return raw


def _name(raw: str) -> str:
    if not raw or not all(c.isalnum() or c == "-" for c in raw):
        raise ValueError("must be letters, digits and '-'")
    return raw.lower()


def _text(raw: str) -> str:
    return raw


def _switch(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0"):
        raise ValueError("must be 'on' or 'off'")
    return value in ("on", "true", "1")


def _prefix(raw: str) -> str:
    value = _name(raw)
    if len(value) > 12 or not value[0].isalpha():
        raise ValueError("must start with a letter and be at most 12 characters "
                         "(container group names are limited to 63)")
    if "--" in value or value.endswith("-"):  # <prefix>-<module>-<time> would hold a '--'
        raise ValueError("must not end with '-' or hold '--' (ACI refuses consecutive hyphens "
                         "in container group names)")
    return value


SETTINGS: tuple[Spec, ...] = (
    Spec("DEPLOYER_BACKEND", "backend", _backend, "local",
         "where images and agents run: 'local' (uv venvs + worker processes) or 'azure'"),
    Spec("AzureWebJobsStorage", "storage_connection", _connection, "",
         "storage account connection string (Azurite locally); in Azure, leave it out and name "
         "the account with AzureWebJobsStorage__accountName (identity-only)", secret=True),
    Spec("AzureWebJobsStorage__accountName", "storage_account_name", _account, "",
         "identity-only storage, as the Functions host reads it: the account whose blob and "
         "queue endpoints are used with the app's managed identity (shared keys may be off)"),
    Spec("AzureWebJobsStorage__blobServiceUri", "storage_blob_uri", _https_url, "",
         "identity-only storage: the blob endpoint, instead of the account name (sovereign "
         "clouds, private endpoints, Azurite over HTTPS)"),
    Spec("AzureWebJobsStorage__queueServiceUri", "storage_queue_uri", _https_url, "",
         "identity-only storage: the queue endpoint, with the blob one"),
    Spec("AzureWebJobsStorage__credential", "storage_credential", _storage_credential, "",
         "identity-only storage: 'managedidentity' (the host's word; DefaultAzureCredential "
         "is used either way, so az login works on a laptop)"),
    Spec("AzureWebJobsStorage__clientId", "storage_client_id", _text, "",
         "identity-only storage: the client id of a user-assigned identity (empty: the "
         "system-assigned one)"),
    Spec("PREFECT_API_URL", "prefect_api_url", _url, None,
         "Prefect API the agents and the deployer talk to"),
    Spec("PREFECT_API_KEY", "prefect_api_key", _text, "",
         "Prefect Cloud API key (empty for a self-hosted server)", secret=True),
    Spec("DEPLOYER_CONFIG_DIGEST_KEY", "config_digest_key", _key, None,
         "secret key of the keyed hash over .env values", secret=True),
    Spec("DEPLOYER_BUNDLES_CONTAINER", "bundles_container", _name, "bundles",
         "blob container that receives flow bundles (the blob trigger watches it)"),
    Spec("DEPLOYER_STATE_CONTAINER", "state_container", _name, "deployer-state",
         "blob container holding state documents, run records and locks"),
    Spec("DEPLOYER_REQUEST_QUEUE", "request_queue", _name, "deploy-requests",
         "storage queue of pipeline requests"),
    Spec("DEPLOYER_CODE_CONTAINER", "code_container", _name, "deployer-code",
         "azure backend: blob container of revisions' code, which flow runs pull (agents need "
         "read access to it only)"),
    Spec("DEPLOYER_MAX_BUNDLE_MB", "max_bundle_mb", _positive_int, "200",
         "largest total uncompressed size of a bundle, in MiB"),
    Spec("DEPLOYER_MAX_BUNDLE_ENTRIES", "max_bundle_entries", _positive_int, "10000",
         "most entries (files and folders) in a bundle"),
    Spec("DEPLOYER_MAX_COMPRESSION_RATIO", "max_compression_ratio", _positive_int, "100",
         "highest uncompressed/compressed ratio of a bundle (zip-bomb guard)"),
    Spec("DEPLOYER_LOCK_LEASE_SECONDS", "lock_lease_seconds", _lease_seconds, "30",
         "blob lease length of a module lock; a crashed holder's lock frees after this"),
    Spec("DEPLOYER_LOCK_WAIT_SECONDS", "lock_wait_seconds", _lock_wait, "10",
         "how long a step waits for its module's step lock (another step holds it for at most "
         "one slice) before it puts its message back on the queue for a moment"),
    Spec("DEPLOYER_STEP_SLICE_SECONDS", "step_slice_seconds", _slice, "20",
         "the most one invocation spends waiting: shorter waits are slept in place, longer ones "
         "end the invocation with a delayed continuation message (host.json's functionTimeout "
         "allows for it)"),
    Spec("DEPLOYER_HOME", "home", _text, ".deployer",
         "local backend: folder for revision images, agent records and logs"),
    Spec("DEPLOYER_VENV_DIR", "venv_dir", _text, "",
         "local backend: where virtualenvs are kept, one per dependency digest, shared by every "
         "image with the same requirements (default: <DEPLOYER_HOME>/venvs)"),
    Spec("DEPLOYER_AGENT_PREFIX", "agent_prefix", _prefix, "agent",
         "agents are named <prefix>-<module>-<UTC timestamp> (the old deploy.sh naming)"),
    Spec("DEPLOYER_HEALTH_TIMEOUT_SECONDS", "health_timeout_seconds", _positive_int, "600",
         "how long a new agent has to show ONLINE in Prefect before the deploy is rolled back "
         "(an ACI group pulls a ~1 GB Prefect image on a cold host: minutes, not seconds)"),
    Spec("DEPLOYER_DRAIN_TIMEOUT_SECONDS", "drain_timeout_seconds", _positive_int, "86400",
         "the drain deadline: an old agent keeps its in-flight runs until they finish, or until "
         "this long after the cutover (only runaway runs are then marked crashed)"),
    Spec("DEPLOYER_BAKE_SECONDS", "bake_seconds", _non_negative_int, "600",
         "after a cutover, how long the new revision's runs are watched while the previous agent "
         "stays ready to take over (0: no bake window)"),
    Spec("DEPLOYER_BAKE_RUNS", "bake_runs", _positive_int, "3",
         "the bake window ends early once this many runs of the new revision have finished"),
    Spec("DEPLOYER_BAKE_FAILURE_RATIO", "bake_failure_ratio", _ratio, "0.5",
         "a baking revision whose runs fail or crash more often than this (and more often than "
         "the previous revision's did) is rolled back on its own"),
    Spec("DEPLOYER_WORKER_POLL_SECONDS", "worker_poll_seconds", _positive_int, "10",
         "how often agents poll Prefect for runs (PREFECT_WORKER_QUERY_SECONDS)"),
    Spec("DEPLOYER_WEBHOOK_TOKEN", "webhook_token", _text, "",
         "shared secret the ACR webhook (or Event Grid) sends in the X-Deployer-Webhook-Token "
         "header; without it every webhook call is refused", secret=True),
    # -- notifications ------------------------------------------------------------------------
    Spec("DEPLOYER_NOTIFY_URLS", "notify_urls", _text, "",
         "apprise URLs (space or comma separated: slack://, msteams://, mailtos://, ntfy://, "
         "json:// ...) told of deploys that succeed, fail or roll back, superseded requests, "
         "cleanups that did something and unauthorised webhook storms; empty: none", secret=True),
    Spec("DEPLOYER_NOTIFY_TIMEOUT_SECONDS", "notify_timeout_seconds", _positive_float, "5",
         "longest a notification may hold up what it reports on; it is given up after that"),
    Spec("DEPLOYER_PUBLIC_URL", "public_url", _optional_url, "",
         "the function app's base URL (https://<app>.azurewebsites.net), for links in "
         "notifications; empty: no link to the deployer's status"),
    # -- cleanup ------------------------------------------------------------------------------
    Spec("CLEANUP_SCHEDULE", "cleanup_schedule", _ncrontab, "0 0 2 * * *",
         "NCRONTAB (six fields, UTC) of the nightly cleanup"),
    Spec("DEPLOYER_KEEP_REVISIONS", "keep_revisions", _positive_int, "5",
         "images of a module's last N revisions (and its newest N tags) are kept"),
    Spec("DEPLOYER_ROLLBACK_WINDOW_DAYS", "rollback_window_days", _non_negative_int, "14",
         "images and bundles of revisions deployed within this many days are kept (rollback)"),
    Spec("DEPLOYER_RETENTION_DAYS", "retention_days", _positive_int, "30",
         "bundles, run records and cleanup reports older than this may be deleted"),
    Spec("DEPLOYER_KEEP_RECORDS", "keep_records", _positive_int, "20",
         "the last N bundles and run records of each module are kept whatever their age"),
    Spec("DEPLOYER_ORPHAN_GRACE_HOURS", "orphan_grace_hours", _positive_int, "24",
         "an agent of a module the deployer does not know is deleted only after this long"),
    Spec("DEPLOYER_ACI_DELETE_QUOTA", "aci_delete_quota", _quota, "100/300,300/3600",
         "container group deletions allowed per window: count/seconds pairs, comma-separated"),
    Spec("DEPLOYER_CLEANUP_CONCURRENCY", "cleanup_concurrency", _positive_int, "4",
         "deletions a cleanup runs at once"),
    Spec("DEPLOYER_CLEANUP_BUDGET_SECONDS", "cleanup_budget_seconds", _positive_int, "600",
         "a cleanup stops (and reports what is left for the next run) after this long"),
    # -- azure backend ------------------------------------------------------------------------
    Spec("AZURE_SUBSCRIPTION_ID", "subscription_id", _text, None,
         "azure backend: the subscription of the registry and the agents", backend="azure"),
    Spec("DEPLOYER_RESOURCE_GROUP", "resource_group", _text, None,
         "azure backend: resource group of the agents' container groups", backend="azure"),
    Spec("DEPLOYER_LOCATION", "location", _text, None,
         "azure backend: region of the agents' container groups (e.g. westeurope)",
         backend="azure"),
    Spec("DEPLOYER_REGISTRY", "registry", _text, None,
         "azure backend: name of the Azure Container Registry that builds and holds images",
         backend="azure"),
    Spec("DEPLOYER_REGISTRY_RESOURCE_GROUP", "registry_resource_group", _text, "",
         "azure backend: resource group of the registry (default: DEPLOYER_RESOURCE_GROUP)"),
    Spec("DEPLOYER_REGISTRY_LOGIN_SERVER", "registry_login_server", _text, "",
         "azure backend: the registry's login server (default: <registry>.azurecr.io)"),
    Spec("DEPLOYER_IMAGE_REPOSITORY", "image_repository", _text, "prefect-flows",
         "azure backend: images are <registry>/<this>/<module>:<code digest>"),
    Spec("DEPLOYER_AGENT_IDENTITY", "agent_identity", _text, "",
         "azure backend: resource id of the user-assigned identity agents pull images with "
         "(AcrPull); without it, registry credentials are used"),
    Spec("DEPLOYER_AGENT_IDENTITY_CLIENT_ID", "agent_identity_client_id", _text, "",
         "azure backend: that identity's client id, given to agents as AZURE_CLIENT_ID so that "
         "flow runs fetch their code from the code container with it"),
    Spec("DEPLOYER_REGISTRY_USERNAME", "registry_username", _text, "",
         "azure backend: registry user for image pulls, only when no agent identity is set"),
    Spec("DEPLOYER_REGISTRY_PASSWORD", "registry_password", _text, "",
         "azure backend: registry password for image pulls, only when no agent identity is set",
         secret=True),
    Spec("DEPLOYER_AGENT_CPU", "agent_cpu", _positive_float, "1",
         "azure backend: CPU cores of an agent container"),
    Spec("DEPLOYER_AGENT_MEMORY_GB", "agent_memory_gb", _positive_float, "1.5",
         "azure backend: memory of an agent container, in GB"),
    Spec("DEPLOYER_BUILD_TIMEOUT_SECONDS", "build_timeout_seconds", _build_timeout, "3600",
         "azure backend: an ACR Tasks build is cancelled after this long (ACR accepts 300-28800)"),
    Spec("DEPLOYER_FAST_DEPLOYS", "fast_deploys", _switch, "on",
         "'on': a change of code alone is published to the code store and re-registered (no "
         "build, no new agent); 'off': every change builds an image and rotates"),
    Spec("DEPLOYER_BASE_IMAGE_REGISTRY", "base_image_registry", _text, "",
         "azure backend: passed to builds as --build-arg DEPLOYER_REGISTRY, for Dockerfiles that "
         "take their base image FROM ${DEPLOYER_REGISTRY}/prefecthq/prefect (azd sets the app's "
         "registry, whose cache rule serves Docker Hub's image; empty: no argument)"),
    Spec("DEPLOYER_BUILD_CACHE", "build_cache", _switch, "on",
         "azure backend: 'on' builds with ACR Tasks' layer cache (a task whose build step has "
         "cache: enabled), 'off' as a plain quick build"),
)

_BY_ATTR = {s.attr: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    backend: str
    storage_connection: Secret
    storage_account_name: str
    storage_blob_uri: str
    storage_queue_uri: str
    storage_credential: str
    storage_client_id: str
    prefect_api_url: str
    prefect_api_key: Secret
    config_digest_key: Secret
    bundles_container: str
    state_container: str
    request_queue: str
    code_container: str
    max_bundle_mb: int
    max_bundle_entries: int
    max_compression_ratio: int
    lock_lease_seconds: int
    lock_wait_seconds: int
    step_slice_seconds: int
    home: str
    venv_dir: str
    agent_prefix: str
    health_timeout_seconds: int
    drain_timeout_seconds: int
    bake_seconds: int
    bake_runs: int
    bake_failure_ratio: float
    worker_poll_seconds: int
    webhook_token: Secret
    notify_urls: Secret
    notify_timeout_seconds: float
    public_url: str
    cleanup_schedule: str
    keep_revisions: int
    rollback_window_days: int
    retention_days: int
    keep_records: int
    orphan_grace_hours: int
    aci_delete_quota: tuple[tuple[int, int], ...]
    cleanup_concurrency: int
    cleanup_budget_seconds: int
    subscription_id: str
    resource_group: str
    location: str
    registry: str
    registry_resource_group: str
    registry_login_server: str
    image_repository: str
    agent_identity: str
    registry_username: str
    registry_password: Secret
    agent_cpu: float
    agent_memory_gb: float
    build_timeout_seconds: int
    build_cache: bool
    base_image_registry: str
    agent_identity_client_id: str
    fast_deploys: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
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
            try:
                value = spec.parse(raw)
            except ValueError as exc:
                shown = "" if spec.secret else f" (got {raw!r})"
                problems.append(f"{spec.env} {exc}{shown}")
                continue
            values[spec.attr] = Secret(value) if spec.secret else value
        problems.extend(_storage_rules(env))
        if backend == "azure":
            problems.extend(_azure_rules(env))
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def __repr__(self) -> str:
        """Secrets hidden (``Secret``), and no credential a URL setting carries."""
        from dataclasses import fields

        from deployer.urls import mask_text

        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return mask_text(f"Settings({shown})")

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


def _storage_rules(env: Mapping[str, str]) -> list[str]:
    """One way to the storage account: a connection string, or an identity-only account."""
    connection = bool(env.get("AzureWebJobsStorage"))
    account = bool(env.get("AzureWebJobsStorage__accountName"))
    uris = [bool(env.get(f"AzureWebJobsStorage__{k}ServiceUri")) for k in ("blob", "queue")]
    if not connection and not account and not any(uris):
        return ["AzureWebJobsStorage is missing: the storage account's connection string "
                "(Azurite locally), or AzureWebJobsStorage__accountName for identity-only access"]
    if connection and (account or any(uris)):
        return ["AzureWebJobsStorage and AzureWebJobsStorage__* are both set: use the connection "
                "string or the identity-only settings, not both"]
    if not connection and not account and not all(uris):
        return ["AzureWebJobsStorage__blobServiceUri and __queueServiceUri go together (the "
                "deployer uses blobs and a queue), or set AzureWebJobsStorage__accountName"]
    return []


def _azure_rules(env: Mapping[str, str]) -> list[str]:
    """What only makes sense together, for the azure backend."""
    problems = []
    if (env.get("DEPLOYER_CONFIG_DIGEST_KEY") or "").startswith("replace-me"):
        problems.append("DEPLOYER_CONFIG_DIGEST_KEY still has the example's placeholder: set a "
                        "random secret (e.g. `openssl rand -hex 32`)")
    if not env.get("DEPLOYER_AGENT_IDENTITY") and not (
            env.get("DEPLOYER_REGISTRY_USERNAME") and env.get("DEPLOYER_REGISTRY_PASSWORD")):
        problems.append("DEPLOYER_AGENT_IDENTITY is missing: agents need a user-assigned identity "
                        "with AcrPull (or, as a fallback, DEPLOYER_REGISTRY_USERNAME and "
                        "DEPLOYER_REGISTRY_PASSWORD)")
    return problems


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
