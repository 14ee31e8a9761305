"""Analytics graphs over the logs and the feedback: totals per time bucket and for the whole range.

Every metric is one ``GROUP BY`` on the bucket in the database (SQLite and PostgreSQL format the
bucket the same way, as UTC text), so the rows read are one per bucket. Latency percentiles are
exact (nearest rank) and computed in Python from ``(latency, count)`` rows streamed in order: the
number of requests per bucket is read first, so each percentile's rank is known before the stream
starts and nothing but a running count is kept. Memory is therefore bounded by the number of
buckets (at most :data:`MAX_POINTS`), never by the number of logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ColumnElement, String, Table, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wayport.control.render import usd, usd_mean
from wayport.store.filters import LogFilters
from wayport.store.logs import LogRepository
from wayport.store.schema import FeedbackRow, LogRow

__all__ = ["METRICS", "MAX_POINTS", "Analytics", "Granularity", "choose_granularity"]

MAX_POINTS = 10_000
METRICS = ("requests", "cost", "tokens", "latency", "errors", "cache/hit-rate", "users", "feedbacks")
PERCENTILES = (("p50", 50), ("p90", 90), ("p99", 99))
CACHE_HITS = ("HIT", "SEMANTIC HIT")
CACHE_LOOKUPS = ("HIT", "SEMANTIC HIT", "MISS", "SEMANTIC MISS", "REFRESH")

_LOGS = cast(Table, LogRow.__table__).c
_FEEDBACK = cast(Table, FeedbackRow.__table__).c
Point = dict[str, Any]


class Granularity(StrEnum):
    """The width of one data point."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def step(self) -> timedelta:
        return {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[
            self.value
        ]

    def floor(self, moment: datetime) -> datetime:
        moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
        if self is not Granularity.MINUTE:
            moment = moment.replace(minute=0)
        return moment.replace(hour=0) if self is Granularity.DAY else moment

    def key(self, start: datetime) -> str:
        """The bucket's text as the database writes it (see ``Analytics._bucket``)."""
        return start.strftime(
            {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H", "day": "%Y-%m-%d"}[self.value]
        )


def choose_granularity(since: datetime, until: datetime) -> Granularity:
    """Minutes up to two hours, hours up to a week, days beyond."""
    span = until - since
    if span <= timedelta(hours=2):
        return Granularity.MINUTE
    return Granularity.HOUR if span <= timedelta(days=7) else Granularity.DAY


def bucket_starts(since: datetime, until: datetime, granularity: Granularity) -> list[datetime]:
    """The start of every bucket that overlaps ``[since, until)``."""
    count = -(-(until - granularity.floor(since)) // granularity.step)
    if count > MAX_POINTS:
        raise ValueError(
            f"the range holds {count} {granularity.value}s, more than {MAX_POINTS} points: "
            "choose a larger bucket"
        )
    first = granularity.floor(since)
    return [first + granularity.step * index for index in range(count)]


class Analytics:
    """Computes the graphs of ``/v1/analytics/graphs/{metric}`` from the store."""

    def __init__(self, logs: LogRepository) -> None:
        self._logs = logs
        # The store has no public accessors for these yet (see the control docs).
        self._engine: AsyncEngine = logs.engine
        self._conditions: Callable[[LogFilters], list[ColumnElement[bool]]] = logs.conditions
        self._dialect = self._engine.dialect.name

    async def groups(self, filters: LogFilters, dimension: str, limit: int = 20) -> list[Point]:
        """Totals per value of ``dimension`` (provider, model, api_key, virtual_key, workspace or
        ``metadata.<key>``) over ``filters``, most requests first."""
        column = self._dimension(dimension)
        statement = (
            select(
                column.label("value"),
                func.count().label("requests"),
                func.sum(_LOGS.cost_micros).label("cost"),
                func.sum(_LOGS.prompt_tokens + _LOGS.completion_tokens).label("tokens"),
                func.avg(_LOGS.latency_ms).label("latency"),
                func.sum(case((_LOGS.status >= 400, 1), else_=0)).label("errors"),
            )
            .where(*self._conditions(filters))
            .group_by(column)
            .order_by(func.count().desc())
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            {
                "value": row["value"],
                "requests": int(row["requests"]),
                "cost": usd(_int(row["cost"])),
                "tokens": _int(row["tokens"]),
                "mean_latency_ms": round(float(row["latency"] or 0)),
                "errors": _int(row["errors"]),
            }
            for row in rows
        ]

    def _dimension(self, dimension: str) -> ColumnElement[Any]:
        columns = {
            "provider": _LOGS.provider,
            "model": _LOGS.model_served,
            "api_key": _LOGS.api_key_id,
            "virtual_key": _LOGS.virtual_key,
            "workspace": _LOGS.workspace_id,
        }
        if dimension in columns:
            return columns[dimension]
        key = dimension.removeprefix("metadata.")
        if not dimension.startswith("metadata.") or not key:
            raise ValueError(f"cannot group by {dimension!r}: use {', '.join(columns)} or metadata.<key>")
        value: ColumnElement[Any] = _LOGS.metadata[key].as_string()
        return value

    async def graph(self, metric: str, filters: LogFilters, granularity: Granularity | None = None) -> Point:
        """``{"summary": {...}, "data_points": [{"timestamp": ..., ...}]}`` for ``metric`` over
        ``filters`` (whose ``since`` and ``until`` must be set)."""
        if filters.since is None or filters.until is None:
            raise ValueError("analytics need both ends of the time range")
        granularity = granularity or choose_granularity(filters.since, filters.until)
        starts = bucket_starts(filters.since, filters.until, granularity)
        if metric == "latency":
            summary, points = await self._latency(filters, granularity, starts)
        elif metric == "feedbacks":
            summary, points = await self._feedbacks(filters, granularity, starts)
        else:
            summary, points = await self._simple(metric, filters, granularity, starts)
        return {
            "object": "analytics-graph",
            "metric": metric,
            "granularity": granularity.value,
            "summary": summary,
            "data_points": points,
        }

    def _bucket(self, column: Any, granularity: Granularity) -> ColumnElement[str]:
        if self._dialect == "postgresql":
            pattern = {"minute": "YYYY-MM-DD HH24:MI", "hour": "YYYY-MM-DD HH24", "day": "YYYY-MM-DD"}
            utc = func.timezone("UTC", column)
            return func.to_char(utc, pattern[granularity.value], type_=String()).label("bucket")
        # SQLite keeps naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff": a prefix is the bucket
        length = {"minute": 16, "hour": 13, "day": 10}[granularity.value]
        return func.substr(column, 1, length, type_=String()).label("bucket")

    async def _grouped(
        self,
        columns: Sequence[ColumnElement[Any]],
        time_column: Any,
        conditions: Sequence[ColumnElement[bool]],
        granularity: Granularity,
        connection: AsyncConnection | None = None,
    ) -> dict[str, tuple[Any, ...]]:
        bucket = self._bucket(time_column, granularity)
        statement = select(bucket, *columns).where(*conditions).group_by(bucket)
        if connection is not None:
            rows = (await connection.execute(statement)).all()
        else:
            async with self._engine.connect() as own:
                rows = (await own.execute(statement)).all()
        return {row[0]: tuple(row[1:]) for row in rows}

    async def _simple(
        self, metric: str, filters: LogFilters, granularity: Granularity, starts: list[datetime]
    ) -> tuple[Point, list[Point]]:
        columns, point_of = _SIMPLE[metric]
        groups = await self._grouped(columns, _LOGS.created_at, self._conditions(filters), granularity)
        width = len(columns)
        totals = [0] * width
        points = []
        for start in starts:
            values = [_int(value) for value in groups.get(granularity.key(start), (0,) * width)]
            totals = [total + value for total, value in zip(totals, values, strict=True)]
            points.append({"timestamp": start.isoformat(), **point_of(values)})
        summary = point_of(totals)
        if metric == "users":  # distinct over the whole range, not a sum of the buckets
            statement = select(func.count(func.distinct(_LOGS.end_user))).where(*self._conditions(filters))
            async with self._engine.connect() as connection:
                summary = {"total": _int((await connection.execute(statement)).scalar_one())}
        return summary, points

    async def _latency(
        self, filters: LogFilters, granularity: Granularity, starts: list[datetime]
    ) -> tuple[Point, list[Point]]:
        conditions = self._conditions(filters)
        bucket = self._bucket(_LOGS.created_at, granularity)
        per_bucket = (
            select(bucket, _LOGS.latency_ms, func.count())
            .where(*conditions)
            .group_by(bucket, _LOGS.latency_ms)
            .order_by(bucket, _LOGS.latency_ms)
        )
        overall = (
            select(_LOGS.latency_ms, func.count())
            .where(*conditions)
            .group_by(_LOGS.latency_ms)
            .order_by(_LOGS.latency_ms)
        )
        async with self._engine.connect() as connection:
            # one snapshot for the three reads, so the counts match the streams
            if self._dialect == "postgresql":
                connection = await connection.execution_options(isolation_level="REPEATABLE READ")
            counts = await self._grouped(
                [func.count(), func.sum(_LOGS.latency_ms)],
                _LOGS.created_at,
                conditions,
                granularity,
                connection,
            )
            pickers = {key: _RankPicker(_int(n)) for key, (n, _total) in counts.items()}
            everything = _RankPicker(sum(picker.total for picker in pickers.values()))
            async for key, latency, count in await connection.stream(per_bucket):
                if (picker := pickers.get(key)) is not None:
                    picker.add(int(latency), int(count))
            async for latency, count in await connection.stream(overall):
                everything.add(int(latency), int(count))
        points = []
        for start in starts:
            key = granularity.key(start)
            n, total = counts.get(key, (0, 0))
            points.append(
                {"timestamp": start.isoformat(), **_latency_point(_int(n), _int(total), pickers.get(key))}
            )
        grand_total = sum(_int(total) for _n, total in counts.values())
        return _latency_point(everything.total, grand_total, everything), points

    async def _feedbacks(
        self, filters: LogFilters, granularity: Granularity, starts: list[datetime]
    ) -> tuple[Point, list[Point]]:
        assert filters.since is not None and filters.until is not None
        conditions: list[ColumnElement[bool]] = [
            _FEEDBACK.created_at >= filters.since,
            _FEEDBACK.created_at < filters.until,
        ]
        # the other filters select traces by their logs, whenever those logs were made
        log_conditions = self._conditions(replace(filters, since=None, until=None))
        if log_conditions:
            traces = select(_LOGS.trace_id).where(*log_conditions)
            conditions.append(_FEEDBACK.trace_id.in_(traces))
        columns = [
            func.count(),
            func.sum(_FEEDBACK.value),
            func.sum(_FEEDBACK.value * _FEEDBACK.weight),
            func.sum(_FEEDBACK.weight),
        ]
        groups = await self._grouped(columns, _FEEDBACK.created_at, conditions, granularity)
        count_total, value_total, weighted_total, weight_total = 0, 0, 0.0, 0.0
        points = []
        for start in starts:
            n, values, weighted, weights = groups.get(granularity.key(start), (0, 0, 0.0, 0.0))
            count_total += _int(n)
            value_total += _int(values)
            weighted_total += float(weighted or 0)
            weight_total += float(weights or 0)
            point = _feedback_point(_int(n), _int(values), float(weighted or 0), float(weights or 0))
            points.append({"timestamp": start.isoformat(), **point})
        return _feedback_point(count_total, value_total, weighted_total, weight_total), points


class _RankPicker:
    """Exact nearest-rank percentiles of a stream of ``(value, count)`` in ascending order."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.found: dict[str, int] = {}
        self._ranks = [(name, max(1, -(-(p * total) // 100))) for name, p in PERCENTILES]
        self._seen = 0

    def add(self, value: int, count: int) -> None:
        self._seen += count
        while self._ranks and self._ranks[0][1] <= self._seen:
            self.found[self._ranks.pop(0)[0]] = value


def _int(value: Any) -> int:
    return int(value or 0)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def _latency_point(n: int, total: int, picker: _RankPicker | None) -> Point:
    found = picker.found if picker is not None and n else {}
    point: Point = {"requests": n, "avg": round(total / n, 1) if n else None}
    point.update({name: found.get(name) for name, _p in PERCENTILES})
    return point


def _feedback_point(n: int, values: int, weighted: float, weights: float) -> Point:
    return {
        "total": n,
        "avg_value": round(values / n, 4) if n else None,
        "avg_weighted_value": round(weighted / weights, 4) if weights else None,
    }


def _cost_point(values: Sequence[int]) -> Point:
    total, priced = values
    return {"total": usd(total), "avg": usd_mean(total, priced), "priced_requests": priced}


def _tokens_point(values: Sequence[int]) -> Point:
    prompt, completion, cached, reasoning = values
    return {
        "total": prompt + completion,
        "prompt": prompt,
        "completion": completion,
        "cached": cached,
        "reasoning": reasoning,
    }


def _errors_point(values: Sequence[int]) -> Point:
    requests, errors = values
    return {"total": errors, "requests": requests, "rate": _ratio(errors, requests)}


def _cache_point(values: Sequence[int]) -> Point:
    hits, lookups, requests = values
    return {"hits": hits, "misses": lookups - hits, "requests": requests, "rate": _ratio(hits, lookups)}


def _flag(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


_SIMPLE: Mapping[str, tuple[Sequence[ColumnElement[Any]], Callable[[Sequence[int]], Point]]] = {
    "requests": ([func.count()], lambda v: {"total": v[0]}),
    "cost": ([func.sum(_LOGS.cost_micros), func.count(_LOGS.cost_micros)], _cost_point),
    "tokens": (
        [
            func.sum(_LOGS.prompt_tokens),
            func.sum(_LOGS.completion_tokens),
            func.sum(_LOGS.cached_tokens),
            func.sum(_LOGS.reasoning_tokens),
        ],
        _tokens_point,
    ),
    "errors": ([func.count(), _flag(_LOGS.status >= 400)], _errors_point),
    "cache/hit-rate": (
        [
            _flag(_LOGS.cache_status.in_(CACHE_HITS)),
            _flag(_LOGS.cache_status.in_(CACHE_LOOKUPS)),
            func.count(),
        ],
        _cache_point,
    ),
    "users": ([func.count(func.distinct(_LOGS.end_user))], lambda v: {"total": v[0]}),
}
