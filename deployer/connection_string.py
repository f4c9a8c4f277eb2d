"""Azure Storage connection strings, checked before any client is built: a string the SDK
would refuse (or read as something else) is named as a setting problem, and no error ever
quotes it, since it holds the account key."""

from __future__ import annotations

from urllib.parse import urlsplit

#: the keys Azure Storage connection strings have (case-insensitive, as the SDKs read them)
KEYS = {k.lower(): k for k in (
    "DefaultEndpointsProtocol", "AccountName", "AccountKey", "EndpointSuffix",
    "SharedAccessSignature", "UseDevelopmentStorage", "DevelopmentStorageProxyUri",
    "BlobEndpoint", "QueueEndpoint", "TableEndpoint", "FileEndpoint", "DfsEndpoint",
    "BlobSecondaryEndpoint", "QueueSecondaryEndpoint", "TableSecondaryEndpoint",
    "FileSecondaryEndpoint")}


def parse(raw: str) -> dict[str, str]:
    """The connection string's parts by their canonical key names; ValueError says what is
    wrong without repeating any value."""
    parts: dict[str, str] = {}
    for n, piece in enumerate(p for p in raw.strip().split(";") if p.strip()):
        key, sep, value = piece.partition("=")
        name = KEYS.get(key.strip().lower())
        if not sep:
            raise ValueError(f"is not a storage connection string: part {n + 1} has no '=' "
                             "(parts are Key=value, separated by ';')")
        if name is None:
            raise ValueError(f"is not a storage connection string: {key.strip()[:40]!r} is not "
                             "one of its keys (AccountName, AccountKey, BlobEndpoint, ...)")
        if name in parts:
            raise ValueError(f"is not a storage connection string: {name} appears twice")
        parts[name] = value.strip()
    if not parts:
        raise ValueError("is empty")
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return parts
    for key, value in parts.items():
        if key.endswith("Endpoint") or key == "DevelopmentStorageProxyUri":
            _check_endpoint(key, value)
    if parts.get("DefaultEndpointsProtocol", "https").lower() not in ("http", "https"):
        raise ValueError("has a DefaultEndpointsProtocol other than http or https")
    has_endpoint = any(k in parts for k in ("BlobEndpoint", "QueueEndpoint"))
    if "AccountName" not in parts and not has_endpoint:
        raise ValueError("names no account: it needs AccountName (or BlobEndpoint and "
                         "QueueEndpoint), or UseDevelopmentStorage=true")
    if not parts.get("AccountKey") and not parts.get("SharedAccessSignature"):
        raise ValueError("has no credential: it needs AccountKey or SharedAccessSignature "
                         "(identity-only storage is not supported yet)")
    return parts


def _check_endpoint(key: str, value: str) -> None:
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        raise ValueError(f"has a {key} that is not a URL with a valid port") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"has a {key} that is not an http(s) URL")
