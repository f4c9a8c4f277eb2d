"""Translate azure-core exceptions of the ARM and registry clients, once, at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from deployer.errors import NotFound, UpstreamError

DETAIL_CHARS = 300
_HINTS = {
    401: "the app's identity could not authenticate; check its managed identity (or az login)",
    403: "grant the function app's identity the role this needs (see README, Deploying to Azure)",
}


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except ClientAuthenticationError as exc:
        raise UpstreamError(f"{what}: authentication failed", hint=_HINTS[401]) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise UpstreamError(f"{what}: Azure could not be reached ({type(exc).__name__})") from exc
    except HttpResponseError as exc:
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or exc.reason or ""
        text = f"{what}: Azure answered {exc.status_code} {code}".rstrip()
        detail = getattr(error, "message", None) if exc.status_code == 400 else None
        if detail:  # a refused request: what Azure refused (ARM names fields, never their values)
            text += f": {str(detail)[:DETAIL_CHARS]}"
        raise UpstreamError(text, hint=_HINTS.get(exc.status_code or 0)) from exc
