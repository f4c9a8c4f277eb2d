"""The kinds of values settings take: each parser turns the raw text into the value or raises
``ValueError`` naming what is wrong (never echoing it: the caller adds the raw text unless the
setting is a secret). ``Secret`` wraps values that must never be printed."""

from __future__ import annotations

from urllib.parse import urlsplit

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


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def worker_poll(raw: str) -> int:
    value = positive_int(raw)
    if value >= 60:  # Prefect shows a queue not polled for 60 s NOT_READY
        raise ValueError("must be 1 to 59 seconds: Prefect shows a work queue that is not polled "
                         "for 60 s as NOT_READY, and a deploy waits for READY")
    return value


def build_timeout(raw: str) -> int:
    value = int(raw)
    if not 300 <= value <= 28800:  # the run request's timeout range (ACR Tasks' REST contract)
        raise ValueError("must be between 300 and 28800 seconds (what ACR Tasks accepts)")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def lease_seconds(raw: str) -> int:
    value = int(raw)
    if not 15 <= value <= 60:
        raise ValueError("must be between 15 and 60 (Azure blob lease limits)")
    return value


#: a step's slice must leave the invocation time for its own work (host.json's functionTimeout)
MAX_STEP_SLICE_SECONDS = 120


def slice(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_STEP_SLICE_SECONDS:
        raise ValueError(f"must be between 1 and {MAX_STEP_SLICE_SECONDS} seconds")
    return value


def lock_wait(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 60:
        raise ValueError("must be between 0 and 60 seconds")
    return value


def ratio(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise ValueError("must be a ratio from 0 to below 1 (0.5: more than half of the runs)")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def quota(raw: str) -> tuple[tuple[int, int], ...]:
    windows = []
    for part in raw.split(","):
        count, _, seconds = part.strip().partition("/")
        if not count.isdigit() or not seconds.isdigit() or int(count) == 0 or int(seconds) == 0:
            raise ValueError("must be count/seconds pairs like 100/300,300/3600")
        windows.append((int(count), int(seconds)))
    return tuple(windows)


def ncrontab(raw: str) -> str:
    from deployer.ncrontab import parse

    parse(raw)  # raises ValueError naming the problem
    return raw


def backend(raw: str) -> str:
    if raw not in ("local", "azure"):
        raise ValueError("must be 'local' or 'azure'")
    return raw


def key(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters (it keys the config digest)")
    return raw


def url(raw: str) -> str:
    try:
        url = urlsplit(raw.strip())
        url.port  # noqa: B018  (raises for a port out of range)
    except ValueError as exc:
        raise ValueError(f"must be an http(s) URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("must be an http(s) URL with a host, like http://127.0.0.1:4200/api")
    return raw.strip().rstrip("/")


def optional_url(raw: str) -> str:
    return url(raw) if raw.strip() else ""


def account(raw: str) -> str:
    value = raw.strip()
    if not (3 <= len(value) <= 24 and value.isalnum() and value == value.lower()):
        raise ValueError("must be a storage account name: 3-24 lowercase letters and digits")
    return value


def https_url(raw: str) -> str:
    value = url(raw)
    if not value.startswith("https://"):
        raise ValueError("must be an https URL (bearer tokens are sent over HTTPS only)")
    return value


def storage_credential(raw: str) -> str:
    value = raw.strip().lower()
    if value != "managedidentity":
        raise ValueError("must be 'managedidentity' (or left out)")
    return value


def connection(raw: str) -> str:
    from deployer import connection_string

    connection_string.parse(raw)
    return raw


def name(raw: str) -> str:
    if not raw or not all(c.isalnum() or c == "-" for c in raw):
        raise ValueError("must be letters, digits and '-'")
    return raw.lower()


def text(raw: str) -> str:
    return raw


def switch(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0"):
        raise ValueError("must be 'on' or 'off'")
    return value in ("on", "true", "1")


def prefix(raw: str) -> str:
    value = name(raw)
    if len(value) > 12 or not value[0].isalpha():
        raise ValueError("must start with a letter and be at most 12 characters "
                         "(container group names are limited to 63)")
    if "--" in value or value.endswith("-"):  # <prefix>-<module>-<time> would hold a '--'
        raise ValueError("must not end with '-' or hold '--' (ACI refuses consecutive hyphens "
                         "in container group names)")
    return value


APPROVALS = ("none", "required", "required-other")


def approval(raw: str) -> str:
    value = raw.strip().lower()
    if value not in APPROVALS:
        raise ValueError(f"must be one of {', '.join(APPROVALS)}")
    return value
