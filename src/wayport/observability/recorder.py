"""From a finished request to its log record, its cost and its metrics.

``price`` runs before a non-streaming answer is sent (its cost goes into ``x-wayport-cost-usd``);
``finish`` runs after the last byte has been sent, so nothing here delays the client: it builds
the record, hands it to the background writer and updates the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from wayport.gateway.context import RequestContext
from wayport.observability.metrics import Metrics
from wayport.observability.pricing import Cost, Pricer
from wayport.observability.record import BodyLogMode, LogRecord, attempt_entries, body_for_log
from wayport.observability.tracing import Tracer
from wayport.observability.writer import LogWriter

log = logging.getLogger("wayport")
# A cache hit costs nothing (what it would have cost is logged as saved).
ZERO_COST = Cost(micros=0, usd=Decimal(0))


@dataclass(frozen=True, slots=True)
class BodyPolicy:
    mode: BodyLogMode = BodyLogMode.TRUNCATED
    limit: int = 64 * 1024


class RequestRecorder:
    def __init__(
        self,
        writer: LogWriter | None,
        pricer: Pricer,
        metrics: Metrics,
        bodies: BodyPolicy = BodyPolicy(),
        tracer: Tracer | None = None,
    ) -> None:
        self.writer = writer
        self.pricer = pricer
        self.metrics = metrics
        self.bodies = bodies
        self.tracer = tracer

    def keeps_bodies(self, ctx: RequestContext) -> bool:
        return self.bodies.mode is not BodyLogMode.OFF and not ctx.skip_bodies

    @staticmethod
    def is_hit(ctx: RequestContext) -> bool:
        return str(ctx.cache_status) in ("HIT", "SEMANTIC HIT")

    def price(self, ctx: RequestContext, status: int, body: bytes) -> Cost | None:
        """Usage and cost of a non-streaming answer (kept on ``ctx``); ``None`` when unknown."""
        if not 200 <= status < 300 or not body:
            return None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(answer, dict):
            return None
        usage = answer.get("usage")
        if isinstance(answer.get("model"), str):
            ctx.model_served = answer["model"]
        if isinstance(usage, dict):
            ctx.usage = usage
        cost = self._cost(ctx)
        return None if cost is None else ZERO_COST if self.is_hit(ctx) else cost

    def _cost(self, ctx: RequestContext) -> Cost | None:
        """What the answer cost: ``ctx.cost``. For a cache hit that is nothing; what the answer
        cost when it was made is reported as saved (``saved``)."""
        if ctx.cost is None and ctx.usage is not None and ctx.provider and ctx.model:
            ctx.cost = self.pricer.cost(ctx.provider, ctx.model_served or ctx.model, ctx.usage)
            if ctx.cost is None and ctx.model_served and ctx.model_served != ctx.model:
                ctx.cost = self.pricer.cost(ctx.provider, ctx.model, ctx.usage)
        return ctx.cost

    def finish(self, ctx: RequestContext, response_body: bytes | None, error: str | None = None) -> None:
        """Record a request that has been answered. Never raises: logging must not fail a request."""
        try:
            record = self._record(ctx, response_body, error)
            if self.writer is not None:
                self.writer.submit(record)
            self.metrics.observe(record)
            if self.tracer is not None:
                attempts = [
                    {**entry, "offset_ms": max(0, (a.started_ns - ctx.started_ns) // 1_000_000)}
                    for entry, a in zip(record.attempts, ctx.attempts, strict=False)
                ]
                self.tracer.record(record, ctx.started_ns, attempts)
        except Exception:
            log.exception("could not record request %s", ctx.trace_id)

    def _record(self, ctx: RequestContext, response_body: bytes | None, error: str | None) -> LogRecord:
        source = ctx.usage_source
        if ctx.usage is None and source is not None and source.usage is not None:
            ctx.usage = dict(source.usage)
        cost = self._cost(ctx)
        saved = None
        if self.is_hit(ctx):
            saved, cost = cost, (ZERO_COST if cost is not None else None)
        usage: Mapping[str, Any] = ctx.usage or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        end = ctx.finished_ns or ctx.started_ns
        paths = {a.target_path for a in ctx.attempts}
        mode = BodyLogMode.OFF if ctx.skip_bodies else self.bodies.mode
        principal = ctx.principal
        return LogRecord(
            workspace_id=principal.workspace(None) if principal is not None else None,
            api_key_id=principal.key_id if principal is not None else None,
            virtual_key=ctx.virtual_key.slug if ctx.virtual_key is not None else None,
            trace_id=ctx.trace_id,
            span_id=ctx.span_id,
            parent_span_id=ctx.parent_span_id,
            span_name=ctx.span_name,
            provider=ctx.provider,
            model_requested=ctx.model,
            model_served=ctx.model_served,
            endpoint=ctx.endpoint.value,
            status=ctx.status or 0,
            stream=ctx.stream,
            latency_ms=(end - ctx.started_ns) // 1_000_000,
            ttft_ms=(ctx.first_byte_ns - ctx.started_ns) // 1_000_000 if ctx.first_byte_ns else None,
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(prompt_details.get("cached_tokens")),
            cache_write_tokens=_int(prompt_details.get("cache_creation_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
            cost_micros=cost.micros if cost is not None else None,
            cost_breakdown=dict(cost.breakdown) if cost is not None else {},
            cache_status=str(ctx.cache_status),
            cache_similarity=ctx.cache_similarity,
            cost_saved_micros=saved.micros if saved is not None else None,
            attempts=attempt_entries(ctx.attempts),
            retries=max(ctx.retry_count, 0),
            fallbacks=max(len(paths) - 1, 0),
            metadata=dict(ctx.metadata),
            request_body=body_for_log(ctx.request_body, mode, self.bodies.limit),
            response_body=body_for_log(response_body, mode, self.bodies.limit),
            error=error,
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
