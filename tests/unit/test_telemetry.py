"""Spans per step and per stage, one trace per request across invocations, its id in the run
record, no secret in any attribute; with no exporter, nothing is configured and nothing breaks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deployer.adapters import azure_monitor
from deployer.models import RunStatus
from deployer.telemetry import trace_id
from tests.unit.pipeline_world import World
from tests.unit.test_fast_deploys import CODE
from tests.unit.test_health_ladder import CHANGE

CANARY = "canary-env-value-9f3a"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer", lambda name, *a, **k: provider.get_tracer(name))
    yield exporter
    provider.shutdown()


def test_a_request_is_one_trace_of_step_and_stage_spans_named_in_its_record(world: World,
                                                                             spans: InMemorySpanExporter) -> None:
    world.run(world.request({".env": f"API_TOKEN={CANARY}\n"}))
    spans.clear()
    world.code.capable = True  # a code-only change: its check run is waited for on the queue
    world.services.settings = replace(world.services.settings, worker_poll_seconds=1)
    record = world.run(world.request({**CODE, ".env": f"API_TOKEN={CANARY}\n"}))
    assert record.status is RunStatus.SUCCEEDED and record.steps >= 2  # several invocations
    finished = spans.get_finished_spans()
    steps = [s for s in finished if s.name == "deployer.step"]
    stages = [s for s in finished if s.name.startswith("deployer.stage ")]
    assert len(steps) == record.steps
    assert {f"{s.context.trace_id:032x}" for s in finished} == {trace_id(record.traceparent)}
    step_ids = {s.context.span_id for s in steps}
    assert stages and all(s.parent is not None and s.parent.span_id in step_ids for s in stages)
    assert {"deployer.stage publish-code", "deployer.stage check-code", "deployer.stage register",
            "deployer.stage commit"} <= {s.name for s in stages}
    assert all(s.attributes["deployer.request_id"] == record.request_id for s in finished)  # type: ignore[index]
    assert steps[-1].attributes["deployer.outcome"] == "succeeded"  # type: ignore[index]
    values = " ".join(str(v) for s in finished for v in (s.attributes or {}).values())
    assert CANARY not in values and "pnu_secret_key" not in values


def test_two_requests_are_two_traces(world: World, spans: InMemorySpanExporter) -> None:
    first, second = world.run(world.request()), world.run(world.request(CHANGE))
    assert trace_id(first.traceparent) != trace_id(second.traceparent)
    assert len({s.context.trace_id for s in spans.get_finished_spans()}) == 2


def test_without_a_connection_string_nothing_is_exported_and_deploys_work(world: World) -> None:
    assert azure_monitor.configure({}) is False
    assert world.run(world.request()).status is RunStatus.SUCCEEDED
