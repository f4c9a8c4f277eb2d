"""Translate azure-storage exceptions into the deployer's errors, once, at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from deployer.errors import NotFound, StateConflict, UpstreamError


@contextmanager
def storage_errors(what: str, where: str) -> Iterator[None]:
    """``what``: the operation ("read state document modules/x.json"); ``where``: the account URL.
    Only the account URL is shown: connection strings carry keys."""
    try:
        yield
    except ResourceExistsError as exc:
        raise StateConflict(f"{what}: it already exists") from exc
    except ResourceModifiedError as exc:
        raise StateConflict(f"{what}: it was changed by someone else (etag moved on)") from exc
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what}: not found") from exc
    except ClientAuthenticationError as exc:
        raise UpstreamError(f"{what}: storage at {where} rejected the credentials",
                            hint="check AzureWebJobsStorage (or the app's managed identity "
                            "role: Storage Blob Data Owner and Storage Queue Data Contributor)"
                            ) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise UpstreamError(f"{what}: cannot reach storage at {where}",
                            hint="is Azurite running (`make dev` starts it)? check "
                            "AzureWebJobsStorage") from exc
    except HttpResponseError as exc:
        code = getattr(exc, "error_code", None) or exc.status_code
        if exc.status_code == 412:
            raise StateConflict(f"{what}: precondition failed ({code})") from exc
        raise UpstreamError(f"{what}: storage at {where} answered {exc.status_code} ({code})"
                            ) from exc
