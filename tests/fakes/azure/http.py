"""Plumbing of the fake Azure: requests, responses, a simulated clock, and the transport that
puts the real Azure SDK clients on top of it.

The SDK clients keep their whole pipeline (auth, retry with ``Retry-After``, LRO, paging,
deserialization): only the socket is replaced, by a ``requests`` adapter mounted on the session of
azure-core's own ``RequestsTransport``. The transport's ``sleep`` (used by the retry policy)
advances the simulated clock, so tests never wait for real.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter, HTTPAdapter


class SimClock:
    """Simulated time for the fake services, the retry policy and the pipeline under test."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
        self._lock = threading.Lock()
        self.slept = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=max(seconds, 0.0))

    def sleep(self, seconds: float) -> None:
        self.slept += max(seconds, 0.0)
        self.advance(seconds)


@dataclass
class Request:
    method: str
    url: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json",
                                                       **(headers or {})})

    @classmethod
    def arm_error(cls, status: int, code: str, message: str,
                  headers: dict[str, str] | None = None) -> Response:
        return cls.of_json(status, {"error": {"code": code, "message": message}}, headers)


class FakeAdapter(BaseAdapter):
    """A requests adapter that answers from ``handler`` instead of the network."""

    def __init__(self, handler: Any) -> None:
        super().__init__()
        self._handler = handler
        self._builder = HTTPAdapter()

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        fake = Request(method=(request.method or "GET").upper(), url=request.url or "",
                       host=parts.netloc.lower(), path=parts.path,
                       query={k: v[0] for k, v in parse_qs(parts.query).items()},
                       headers={k.lower(): v for k, v in request.headers.items()},
                       body=bytes(body))
        answer: Response = self._handler(fake)
        raw = urllib3.response.HTTPResponse(body=io.BytesIO(answer.body), headers=answer.headers,
                                            status=answer.status, preload_content=False,
                                            decode_content=False, request_method=fake.method)
        return self._builder.build_response(request, raw)

    def close(self) -> None:
        pass


class FakeTransport(RequestsTransport):
    def __init__(self, handler: Any, clock: SimClock) -> None:
        session = requests.Session()
        session.trust_env = False
        adapter = FakeAdapter(handler)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        super().__init__(session=session, session_owner=False)
        self._clock = clock

    def sleep(self, duration: float) -> None:
        self._clock.sleep(duration)
