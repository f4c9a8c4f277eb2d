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

from deployer.errors import NotFound, ProviderNotRegistered, UpstreamError

DETAIL_CHARS = 300
_HINTS = {
    401: "the app's identity could not authenticate; check its managed identity (or az login)",
    403: "grant the function app's identity the role this needs (infra/resources.bicep assigns "
         "each, saying why; docs/azure-provisioning.md lists them); a role assigned minutes ago "
         "may not apply yet: the request is tried again",
}


def _detail(exc: HttpResponseError) -> str:
    """What the service said, short: ARM's error message, or the registry's first error (both
    name actions, scopes and fields, never a secret's value)."""
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None)
    if message:
        return str(message)
    import json

    try:
        body = json.loads(exc.response.text()) if exc.response is not None else None
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return f"{errors[0].get('code', '')}: {errors[0].get('message', '')}".strip(": ")
    return ""


def _namespace(message: str) -> str:
    """The provider ARM names in a MissingSubscriptionRegistration message."""
    import re

    found = re.search(r"namespace '([A-Za-z0-9.]+)'", message)
    return found[1] if found else "Microsoft.ContainerInstance"


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
        if code == "MissingSubscriptionRegistration":
            namespace = _namespace(str(getattr(error, "message", "") or ""))
            raise ProviderNotRegistered(
                f"{what}: the subscription has not registered the resource provider {namespace}",
                hint=f"register it once (azd up does): az provider register --namespace "
                     f"{namespace} --wait; the app's own roles cannot") from exc
        text = f"{what}: Azure answered {exc.status_code} {code}".rstrip()
        detail = _detail(exc) if exc.status_code in (400, 403) else ""
        if detail:  # what Azure refused, or which action the caller lacks
            text += f": {detail[:DETAIL_CHARS]}"
        raise UpstreamError(text, hint=_HINTS.get(exc.status_code or 0)) from exc
