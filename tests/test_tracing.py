"""OpenTelemetry spans: one per request, one per upstream attempt, GenAI attributes; off and
free without the endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import GatewayServer, emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from wayport.gateway.retry import RetryRunner
from wayport.observability.tracing import Tracer, tracer_from_environment


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced_gateway(
    openai_emulator: OpenAIEmulator, spans: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    server = GatewayServer(
        emulator_settings(openai_emulator, Path(tmp_path_factory.mktemp("traced"))),
        retry=RetryRunner(base_delay_s=0.01, max_delay_s=0.02),
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    server.app.recorder.tracer = Tracer(provider)
    server.start()
    yield server
    server.stop()


def test_a_span_per_request_and_per_attempt(
    traced_gateway: GatewayServer, openai_emulator: OpenAIEmulator, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    openai_emulator.inject(Fault(status=503, json={"error": {"message": "down"}}))
    config = {"provider": "openai", "api_key": "k", "retry": {"attempts": 1}}
    r = httpx.post(
        traced_gateway.v1 + "/chat/completions",
        headers={"x-portkey-config": orjson.dumps(config).decode(), "x-portkey-trace-id": "trace-otel"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]},
    )
    assert r.status_code == 200
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.parent is None]
    attempts = [s for s in finished if s.parent is not None]
    assert root.name == "chat gpt-4o"
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.provider.name"] == "openai"
    assert root.attributes["gen_ai.usage.input_tokens"] == r.json()["usage"]["prompt_tokens"]
    assert root.attributes["wayport.trace_id"] == "trace-otel"
    assert [a.attributes["http.response.status_code"] for a in attempts if a.attributes] == [503, 200]
    assert all(a.parent is not None and a.parent.span_id == root.context.span_id for a in attempts)
    assert root.start_time is not None and root.end_time is not None and root.end_time >= root.start_time


def test_tracing_is_off_without_an_endpoint() -> None:
    assert tracer_from_environment({}) is None
    tracer = tracer_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracer is not None
    tracer.shutdown()
