"""Prefect's failures in the deployer's terms, once, at the boundary: unreachable or refusing
APIs become ``UpstreamError`` with a hint, refusals of a payload a short line (never a pydantic
dump), and a 404 in either of its two shapes is "not found"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pydantic
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from deployer.errors import UpstreamError, UpstreamRefused

#: answers that refuse the request as it was made: the same request gets them again
REFUSING = frozenset({400, 404, 405, 409, 413, 415, 422})


def first_error(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{where}: {first.get('msg')}".removeprefix(": ").replace("Value error, ", "")
        except (IndexError, TypeError, AttributeError):
            pass
    return (str(exc) or type(exc).__name__).splitlines()[0][:300]


def refusal_detail(exc: PrefectHTTPStatusError) -> str:
    """What Prefect said, short: the first validation error's place and message."""
    try:
        detail = exc.response.json().get("detail")
    except ValueError:
        return exc.response.text[:300]
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return f"{where}: {first.get('msg', '')}"[:300]
    return str(detail)[:300]


def not_found(exc: Exception) -> bool:
    if isinstance(exc, ObjectNotFound):
        return True
    return isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code == 404


@contextlib.contextmanager
def translated(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
        raise UpstreamError(f"{what}: cannot reach the Prefect API at {url}",
                            hint="is the Prefect server running (`make dev` starts it)? check "
                            "PREFECT_API_URL") from exc
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        if status in REFUSING:
            raise UpstreamRefused(f"{what}: the Prefect API refused it ({status}): "
                                  f"{refusal_detail(exc)}") from exc
        hint = ("check PREFECT_API_KEY and that it may use this workspace"
                if status in (401, 403) else None)
        raise UpstreamError(f"{what}: the Prefect API answered {status}", hint=hint) from exc
    except pydantic.ValidationError as exc:  # the client's own models refuse the payload
        raise UpstreamRefused(f"{what}: Prefect refuses it: {first_error(exc)}") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{what}: Prefect API request failed ({type(exc).__name__})") from exc
