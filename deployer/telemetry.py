"""Telemetry the Functions way: OpenTelemetry spans, exported to Application Insights when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (``adapters/azure_monitor.py``), off otherwise.

Every request gets a W3C trace context when its record is created (``new_traceparent``), kept in
the run record; each step of it (one queue invocation) is a span ``deployer.step`` under that
context, and each look at an operation a span ``deployer.stage <name>`` under the step's, so one
trace shows a request from upload to its end, across invocations. Attributes are the request id,
module, kind, stage and outcome: never a value from ``.env``, a key, a URL with a token or an error
message. With no exporter the spans are OpenTelemetry's no-op ones and cost next to nothing.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from typing import Any


def new_traceparent() -> str:
    """A fresh W3C trace context (``00-<trace id>-<span id>-01``) for a new request."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id(traceparent: str) -> str:
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else ""


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any], traceparent: str = "") -> Iterator[Any]:
    """A span, under ``traceparent`` when given (else under the current span, if any)."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None
    tracer = trace.get_tracer("deployer")
    clean = {k: v for k, v in attributes.items() if isinstance(v, str | int | float | bool)}
    with tracer.start_as_current_span(name, context=context, attributes=clean) as current:
        yield current
