"""OpenTelemetry traces: one span per request and one child span per upstream attempt, with the
GenAI semantic-convention attributes.

Optional: install the ``otel`` extra and set ``OTEL_EXPORTER_OTLP_ENDPOINT``. Spans are built
after the answer has been sent, from the timings the request context already holds, so tracing
adds nothing to the request path; without the extra or the endpoint it is off and costs nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from wayport.observability.metrics import OPERATIONS
from wayport.observability.record import LogRecord


class Tracer:
    """Turns finished log records into spans on an OpenTelemetry ``TracerProvider``."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("wayport")
        # Monotonic nanoseconds (request timings) to wall-clock nanoseconds (span times).
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def record(self, record: LogRecord, started_ns: int, attempts: Sequence[Mapping[str, Any]]) -> None:
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        start = started_ns + self._offset_ns
        end = start + record.latency_ms * 1_000_000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": record.provider or "unknown",
            "gen_ai.request.model": record.model_requested or "",
            "gen_ai.response.model": record.model_served or record.model_requested or "",
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "http.response.status_code": record.status,
            "wayport.trace_id": record.trace_id,
            "wayport.log_id": record.id,
            "wayport.cache_status": record.cache_status,
            "wayport.retries": record.retries,
        }
        if record.cost_micros is not None:
            attributes["wayport.cost_micro_usd"] = record.cost_micros
        if record.status >= 400:
            attributes["error.type"] = str(record.status)
        span = self._tracer.start_span(
            f"{operation} {record.model_requested or ''}".strip(), start_time=start
        )
        span.set_attributes(attributes)
        context = _context_of(span)
        for attempt in attempts:
            child = self._tracer.start_span(
                f"attempt {attempt.get('target_path')}",
                context=context,
                start_time=start + int(attempt.get("offset_ms") or 0) * 1_000_000,
            )
            child.set_attributes(
                {
                    "gen_ai.provider.name": str(attempt.get("provider") or ""),
                    "wayport.target_path": str(attempt.get("target_path") or ""),
                    "wayport.retry_index": int(attempt.get("retry_index") or 0),
                    "http.response.status_code": int(attempt.get("status") or 0),
                }
            )
            if attempt.get("error"):
                child.set_attribute("error.type", str(attempt["error"])[:200])
            latency = attempt.get("latency_ms")
            child.end(end_time=child.start_time + int(latency or 0) * 1_000_000)
        span.end(end_time=end)

    def shutdown(self) -> None:
        self._provider.shutdown()


def _context_of(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def tracer_from_environment(env: Mapping[str, str] | None = None) -> Tracer | None:
    """A tracer exporting over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the
    ``otel`` extra is installed; ``None`` otherwise."""
    env = os.environ if env is None else env
    if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "wayport")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracer(provider)
