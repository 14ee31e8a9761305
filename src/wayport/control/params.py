"""Query parameters shared by the logs and analytics endpoints, turned into ``LogFilters``.

Times are ISO 8601 (``2025-03-01T12:00:00Z``; a date alone is midnight UTC; no offset means UTC).
``time_of_generation_min`` is inclusive, ``time_of_generation_max`` exclusive. One-or-many filters
(``provider``, ``model``, ``status``, ``cache_status``) take repeated parameters or a comma list.
Costs are US dollars; latencies milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated, Any

import orjson
from fastapi import Query, Request

from wayport.control.errors import ControlError, FieldError
from wayport.store.filters import LogFilters, parse_status

__all__ = ["log_filters", "parse_time", "usd_to_micros"]

# Portkey filters Wayport does not apply yet: refused, so that a graph never silently ignores one.
UNSUPPORTED_FILTERS = frozenset(
    {
        "total_units_min",
        "total_units_max",
        "prompt_token_min",
        "prompt_token_max",
        "completion_token_min",
        "completion_token_max",
        "weighted_feedback_min",
        "weighted_feedback_max",
        "virtual_keys",
        "configs",
        "api_key_ids",
        "ai_org_model",
        "prompt_slug",
        "span_id",
        "workspace_slug",
    }
)
_METADATA_PREFIX = "metadata."
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(field: str, text: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; ``FieldError`` naming ``field`` otherwise."""
    value = text.strip()
    try:
        if _DATE_ONLY.match(value):
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(field, "must be an ISO 8601 timestamp, e.g. 2025-03-01T12:00:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# bounds that keep every filter within the store's 64-bit integer columns
MAX_USD = Decimal(10) ** 12
MAX_MILLIS = 2**31 - 1


def usd_to_micros(field: str, value: Decimal, *, upper: bool) -> int:
    """A dollar bound as micro-dollars: a lower bound rounds up and an upper bound down, so that
    ``cost >= bound`` means the same on the integer column as on the exact decimal."""
    if not value.is_finite() or value < 0 or value > MAX_USD:
        raise FieldError(field, f"must be a number of US dollars from 0 to {MAX_USD}")
    micros = value.scaleb(6)
    return int(micros.to_integral_value(rounding=ROUND_FLOOR if upper else ROUND_CEILING))


def _many(values: list[str] | None) -> list[str]:
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def _metadata(request: Request, raw: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if raw is not None:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise FieldError(
                "metadata", 'must be a JSON object such as {"env":"prod"}, or use metadata.env=prod'
            )
        found.update(
            {str(key): value if isinstance(value, str) else str(value) for key, value in parsed.items()}
        )
    for key, value in request.query_params.multi_items():
        if key.startswith(_METADATA_PREFIX) and len(key) > len(_METADATA_PREFIX):
            found[key[len(_METADATA_PREFIX) :]] = value
    return found


async def log_filters(
    request: Request,
    time_of_generation_min: Annotated[
        str | None, Query(description="ISO 8601; logs created at or after this time")
    ] = None,
    time_of_generation_max: Annotated[
        str | None, Query(description="ISO 8601; logs created before this time")
    ] = None,
    trace_id: Annotated[str | None, Query()] = None,
    provider: Annotated[list[str] | None, Query(description="e.g. openai or openai,anthropic")] = None,
    model: Annotated[list[str] | None, Query(description="requested or served model")] = None,
    status: Annotated[list[str] | None, Query(description="200, 429, 4xx, 5xx; a comma list")] = None,
    status_code: Annotated[list[str] | None, Query(description="Portkey's name for status")] = None,
    cache_status: Annotated[list[str] | None, Query(description="HIT, MISS, DISABLED, ...")] = None,
    cost_min: Annotated[Decimal | None, Query(description="US dollars")] = None,
    cost_max: Annotated[Decimal | None, Query(description="US dollars")] = None,
    latency_min: Annotated[int | None, Query(ge=0, le=MAX_MILLIS, description="milliseconds")] = None,
    latency_max: Annotated[int | None, Query(ge=0, le=MAX_MILLIS, description="milliseconds")] = None,
    user: Annotated[str | None, Query(description="metadata._user")] = None,
    metadata: Annotated[
        str | None, Query(description='JSON object, e.g. {"env":"prod"}; or metadata.<key>=<value>')
    ] = None,
) -> LogFilters:
    """The filters of a logs or analytics request (a FastAPI dependency)."""
    for name in request.query_params:
        if name in UNSUPPORTED_FILTERS:
            raise ControlError.invalid(FieldError(name, "this Portkey filter is not supported by Wayport"))
    try:
        since = (
            parse_time("time_of_generation_min", time_of_generation_min) if time_of_generation_min else None
        )
        until = (
            parse_time("time_of_generation_max", time_of_generation_max) if time_of_generation_max else None
        )
        if since is not None and until is not None and until <= since:
            raise FieldError("time_of_generation_max", "must be later than time_of_generation_min")
        statuses = _many(status) + _many(status_code)
        if statuses:
            try:
                parse_status(statuses)
            except ValueError as exc:
                raise FieldError("status", str(exc)) from None
        min_cost = usd_to_micros("cost_min", cost_min, upper=False) if cost_min is not None else None
        max_cost = usd_to_micros("cost_max", cost_max, upper=True) if cost_max is not None else None
        return LogFilters(
            since=since,
            until=until,
            trace_id=trace_id or None,
            metadata=_metadata(request, metadata),
            user=user or None,
            provider=_many(provider) or None,
            model=_many(model) or None,
            status=statuses or None,
            cache_status=_many(cache_status) or None,
            min_cost_micros=min_cost,
            max_cost_micros=max_cost,
            min_latency_ms=latency_min,
            max_latency_ms=latency_max,
        )
    except FieldError as exc:
        raise ControlError.invalid(exc) from None
