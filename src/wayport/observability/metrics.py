"""Prometheus metrics, named after the OpenTelemetry GenAI conventions where they have a name.

One ``Metrics`` object per process owns its registry (no module-level state); the gateway feeds
it one finished ``LogRecord`` per request, after the answer has been sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wayport.observability.record import LogRecord

CONTENT_TYPE = CONTENT_TYPE_LATEST
# GenAI semconv buckets: operation duration in seconds, token counts in powers of 4.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
# Bound label sets kept (clients choose model names, so the table must not grow without bound).
MAX_BOUND_SERIES = 10_000
OPERATIONS = {"chatComplete": "chat", "complete": "text_completion", "embed": "embeddings"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.observed = 0  # records observed: whether the metrics changed since a look
        labels = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
        r = self.registry
        self.requests = Counter(
            "wayport_requests",
            "Requests answered, by provider, model and status",
            (*labels, "status"),
            registry=r,
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Time from the request to the end of the answer",
            (*labels, "error_type"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed byte",
            labels,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per request, by type (input or output)",
            (*labels, "gen_ai_token_type"),
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "wayport_cost_micro_usd", "Cost of the answered requests, in micro-dollars", labels, registry=r
        )
        self.unpriced = Counter(
            "wayport_unpriced_requests", "Requests whose model has no known price", labels, registry=r
        )
        self.cache = Counter("wayport_cache_lookups", "Cache lookups by status", ("status",), registry=r)
        self.retries = Counter(
            "wayport_retries", "Retries made towards providers", ("gen_ai_provider_name",), registry=r
        )
        self.fallbacks = Counter("wayport_fallbacks", "Requests answered by a fallback target", registry=r)
        self.log_queue = Gauge("wayport_log_queue_depth", "Log records waiting to be written", registry=r)
        self.logs_dropped = Gauge(
            "wayport_logs_dropped",
            "Log records dropped: queue and overflow full",
            registry=r,
        )
        self.logs_written = Gauge("wayport_logs_written", "Log records written to the store", registry=r)
        self._series: dict[tuple[str, str, str, int], tuple[Any, ...]] = {}
        self.logs_spooled = Gauge(
            "wayport_logs_spooled",
            "Log records spooled: store failure or overflow",
            registry=r,
        )

    def observe(self, record: LogRecord) -> None:
        self.observed += 1
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        provider = record.provider or "unknown"
        model = record.model_requested or record.model_served or "unknown"
        ok = 200 <= record.status < 300
        series = self._series.get((operation, provider, model, record.status))
        if series is None:
            series = self._bind(operation, provider, model, record.status)
        requests, duration, ttft, tokens_in, tokens_out, cost, unpriced = series
        requests.inc()
        duration.observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            ttft.observe(record.ttft_ms / 1000)
        if record.prompt_tokens or record.completion_tokens:
            tokens_in.observe(record.prompt_tokens)
            tokens_out.observe(record.completion_tokens)
        if record.cost_micros is not None:
            cost.inc(record.cost_micros)
        elif ok:
            unpriced.inc()
        if record.cache_status != "DISABLED":
            self.cache.labels(record.cache_status).inc()
        if record.retries > 0:
            self.retries.labels(provider).inc(record.retries)
        if record.fallbacks > 0:
            self.fallbacks.inc()

    def _bind(self, operation: str, provider: str, model: str, status: int) -> tuple[Any, ...]:
        # Label lookups cost more than the updates; each label set is bound once.
        names = (operation, provider, model)
        error_type = "" if 200 <= status < 300 else str(status)
        series = (
            self.requests.labels(*names, str(status)),
            self.duration.labels(*names, error_type),
            self.ttft.labels(*names),
            self.tokens.labels(*names, "input"),
            self.tokens.labels(*names, "output"),
            self.cost.labels(*names),
            self.unpriced.labels(*names),
        )
        if len(self._series) < MAX_BOUND_SERIES:
            self._series[(operation, provider, model, status)] = series
        return series

    def render(self, writer_stats: Callable[[], dict[str, int]] | None = None) -> bytes:
        """The exposition text; ``writer_stats`` refreshes the log writer's gauges first."""
        if writer_stats is not None:
            stats = writer_stats()
            self.log_queue.set(stats.get("queued", 0))
            self.logs_dropped.set(stats.get("dropped", 0))
            self.logs_written.set(stats.get("written", 0))
            self.logs_spooled.set(stats.get("spooled", 0))
        return generate_latest(self.registry)
