"""Credentials in URLs: what a URL setting may carry (``https://user:password@host/api``,
``?sig=...`` of a SAS, ``?code=...`` of a function key) never reaches a page, a notification, a
log line, an error or a record. ``mask`` is how a URL is shown; ``mask_text`` shows every URL in a
text that way (error messages, which may quote an SDK's); ``has_credentials`` tells whether a URL
must travel as a secret (an agent's ``PREFECT_API_URL``).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: query parameters that authorise (SAS ``sig``, function keys ``code``, tokens and keys)
SECRET_PARAMS = frozenset({"sig", "signature", "code", "token", "access_token", "api_key",
                           "apikey", "api-key", "key", "password", "secret", "client_secret",
                           "x-api-key", "auth"})
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def _secret_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_PARAMS or lowered.endswith(("token", "secret", "password", "_key"))


def has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.username or parts.password) or any(
        _secret_param(k) for k, _ in parse_qsl(parts.query, keep_blank_values=True))


def mask(url: str) -> str:
    """``url`` with the password of its userinfo and its secret query values replaced."""
    if not has_credentials(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        host = netloc.rsplit("@", 1)[-1]
        user = parts.username or ""
        netloc = f"{user}:{MASK}@{host}" if parts.password is not None else f"{MASK}@{host}"
    query = urlencode([(k, MASK if _secret_param(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str) -> str:
    """``text`` with every URL in it masked."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: mask(m.group(0)), text)
