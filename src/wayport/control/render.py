"""How a log leaves the control API: one JSON object, the same in the API and in exports.

Wayport's own fields come first (the :class:`~wayport.observability.record.LogRecord`, plus
``cost_usd`` and ``total_tokens``); Portkey's export field ids follow as aliases
(``ai_org``, ``ai_model``, ``req_units``, ``res_units``, ``total_units``, ``cost`` in cents,
``cost_currency``, ``response_time``, ``response_status_code``), so tools written against Portkey's
exports read Wayport's unchanged. Money is integer micro-dollars rendered as exact decimals.
"""

from __future__ import annotations

from datetime import UTC
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from wayport.observability.record import LogRecord

__all__ = ["CSV_COLUMNS", "cents", "log_to_json", "usd", "usd_mean"]

# the order of the CSV export's columns (nested values are JSON text)
CSV_COLUMNS = (
    "id",
    "created_at",
    "trace_id",
    "span_id",
    "parent_span_id",
    "span_name",
    "workspace_id",
    "api_key_id",
    "provider",
    "model_requested",
    "model_served",
    "endpoint",
    "status",
    "stream",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_micros",
    "currency",
    "cost_breakdown",
    "cache_status",
    "retries",
    "fallbacks",
    "attempts",
    "user",
    "metadata",
    "error",
    "request_body",
    "response_body",
)


def usd(micros: int | None) -> Decimal | None:
    """Integer micro-dollars as exact US dollars (``1234`` → ``0.001234``)."""
    return None if micros is None else Decimal(micros).scaleb(-6)


def cents(micros: int | None) -> Decimal | None:
    """Integer micro-dollars as exact US cents, Portkey's unit for ``cost``."""
    return None if micros is None else Decimal(micros).scaleb(-4)


def usd_mean(total_micros: int, count: int) -> Decimal | None:
    """The mean of ``count`` costs summing to ``total_micros``, to the micro-dollar (half even)."""
    if count <= 0:
        return None
    mean = (Decimal(total_micros) / Decimal(count)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return mean.scaleb(-6)


def log_to_json(record: LogRecord, *, include_bodies: bool = True) -> dict[str, Any]:
    """The API's (and JSONL export's) object for one log."""
    total_tokens = record.prompt_tokens + record.completion_tokens
    out: dict[str, Any] = {
        "object": "log",
        "id": record.id,
        "created_at": record.created_at.astimezone(UTC).isoformat(),
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "parent_span_id": record.parent_span_id,
        "span_name": record.span_name,
        "workspace_id": record.workspace_id,
        "api_key_id": record.api_key_id,
        "virtual_key": record.virtual_key,
        "provider": record.provider,
        "model_requested": record.model_requested,
        "model_served": record.model_served,
        "endpoint": record.endpoint,
        "status": record.status,
        "stream": record.stream,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": total_tokens,
        "cached_tokens": record.cached_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": usd(record.cost_micros),
        "cost_micros": record.cost_micros,
        "currency": record.currency,
        "cost_breakdown": record.cost_breakdown,
        "cache_status": record.cache_status,
        "retries": record.retries,
        "fallbacks": record.fallbacks,
        "attempts": record.attempts,
        "user": record.user,
        "metadata": record.metadata,
        "error": record.error,
    }
    if include_bodies:
        out["request_body"] = record.request_body
        out["response_body"] = record.response_body
    # Portkey's export field ids
    out.update(
        ai_org=record.provider,
        ai_model=record.model_served or record.model_requested,
        req_units=record.prompt_tokens,
        res_units=record.completion_tokens,
        total_units=total_tokens,
        cost=cents(record.cost_micros),
        cost_currency=record.currency,
        response_time=record.latency_ms,
        response_status_code=record.status,
    )
    return out
