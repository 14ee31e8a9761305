"""The request-log repository: batched inserts, lookups, filtered pages and streamed exports.

Pages are keyset-paginated on ``(created_at, id)``: a cursor names the last row seen and the next
page starts strictly after it, so rows inserted while a client pages never shift what it sees —
nothing is returned twice and no row that existed when paging began is skipped. Exports walk the
same keyset in fixed-size batches, so memory stays flat whatever the number of rows.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import orjson
from sqlalchemy import ColumnElement, Select, String, Table, delete, func, or_, select, tuple_, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.observability.record import LogRecord, scrub_record
from wayport.store.filters import LogFilters, status_condition
from wayport.store.schema import LogRow, UTCDateTime
from wayport.store.tenancy import visible

__all__ = ["InvalidCursor", "LogFilters", "LogPage", "LogRepository"]

Order = Literal["desc", "asc"]

_TABLE = cast(Table, LogRow.__table__)
_C = _TABLE.c
_BODY_COLUMNS = frozenset({"request_body", "response_body"})
_LIST_COLUMNS = [column for column in _TABLE.columns if column.name not in _BODY_COLUMNS]
# String columns with a length limit (PostgreSQL enforces it; values are clipped, not rejected).
_LIMITS = {
    column.name: column.type.length
    for column in _TABLE.columns
    if isinstance(column.type, String) and column.type.length
}
MAX_PAGE_SIZE = 1000


class InvalidCursor(ValueError):
    """A pagination cursor that this repository did not issue (or for the other order)."""


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of logs and the cursor of the next page (``None`` on the last page)."""

    records: list[LogRecord]
    next_cursor: str | None


class LogRepository:
    """Logs in the store. Inserts are idempotent by log id, so a replayed batch adds nothing twice.

    Everything inserted is scrubbed of secrets first (:func:`~wayport.observability.record.scrub_record`).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def insert_many(self, records: Sequence[LogRecord]) -> None:
        """Insert ``records`` in one transaction; ids already stored are skipped."""
        if not records:
            return
        # Scrubbing and serialising a batch is milliseconds of CPU: off the event loop, so that
        # requests in flight are not held up behind it.
        rows = await asyncio.to_thread(_to_rows, records)
        if self._dialect == "postgresql":
            statement: Any = postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
        elif self._dialect == "sqlite":
            statement = sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
        else:  # pragma: no cover - only the two engines above are supported
            statement = _TABLE.insert()
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                await connection.execute(statement, rows)

    async def get(self, log_id: str) -> LogRecord | None:
        """The log with this id, bodies included."""
        async with self._engine.connect() as connection:
            result = await connection.execute(select(_TABLE).where(_C.id == log_id, visible(_C.workspace_id)))
            row = result.mappings().first()
        return _from_row(row) if row is not None else None

    async def query(
        self,
        filters: LogFilters | None = None,
        cursor: str | None = None,
        limit: int = 50,
        *,
        order: Order = "desc",
        include_bodies: bool = False,
    ) -> LogPage:
        """A page of logs matching ``filters``, newest first by default, after ``cursor``.

        ``limit`` is capped at 1000. Bodies are left out (``None``) unless ``include_bodies``.
        Raises ``InvalidCursor`` for a foreign cursor and ``ValueError`` for a bad filter.
        """
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        after = decode_cursor(cursor, order) if cursor else None
        statement = self._select(filters or LogFilters(), after, order, include_bodies).limit(limit + 1)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        records = [_from_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(records[-1], order) if len(rows) > limit else None
        return LogPage(records, next_cursor)

    async def count(self, filters: LogFilters | None = None) -> int:
        """How many logs match ``filters`` (for an export's progress report)."""
        statement = select(func.count()).select_from(_TABLE).where(*self._conditions(filters or LogFilters()))
        async with self._engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def export_batches(
        self, filters: LogFilters | None = None, *, batch_size: int = 1000, include_bodies: bool = True
    ) -> AsyncIterator[list[LogRecord]]:
        """Every matching log, oldest first, ``batch_size`` at a time; one short query per batch, so
        no transaction or cursor stays open while the consumer writes the batch out."""
        filters = filters or LogFilters()
        after: tuple[datetime, str] | None = None
        while True:
            statement = self._select(filters, after, "asc", include_bodies).limit(batch_size)
            async with self._engine.connect() as connection:
                rows = (await connection.execute(statement)).mappings().all()
            if not rows:
                return
            batch = [_from_row(row) for row in rows]
            del rows
            after = (batch[-1].created_at, batch[-1].id)
            yield batch
            if len(batch) < batch_size:
                return

    async def export(
        self, filters: LogFilters | None = None, *, batch_size: int = 1000, include_bodies: bool = True
    ) -> AsyncIterator[LogRecord]:
        """Every matching log, oldest first, fetched in batches (bounded memory)."""
        async for batch in self.export_batches(filters, batch_size=batch_size, include_bodies=include_bodies):
            for record in batch:
                yield record

    async def delete_before(self, cutoff: datetime, *, batch_size: int = 10_000) -> int:
        """Delete logs created before ``cutoff`` (retention), in batches so that no single
        transaction holds the table for long; returns how many were deleted."""
        deleted = 0
        while True:
            ids = select(_C.id).where(_C.created_at < cutoff).limit(batch_size).scalar_subquery()
            async with self._engine.connect() as connection:
                connection = await connection.execution_options(sqlite_immediate=True)
                async with connection.begin():
                    result = await connection.execute(delete(_TABLE).where(_C.id.in_(ids)))
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < batch_size:
                return deleted

    def _select(
        self, filters: LogFilters, after: tuple[datetime, str] | None, order: Order, include_bodies: bool
    ) -> Select[Any]:
        columns = _TABLE.columns if include_bodies else _LIST_COLUMNS
        statement = select(*columns).where(*self._conditions(filters))
        if after is not None:
            key = tuple_(_C.created_at, _C.id)
            bound = tuple_(
                type_coerce(after[0], UTCDateTime()),
                type_coerce(after[1], _C.id.type),
            )
            statement = statement.where(key < bound if order == "desc" else key > bound)
        if order == "desc":
            return statement.order_by(_C.created_at.desc(), _C.id.desc())
        return statement.order_by(_C.created_at.asc(), _C.id.asc())

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def conditions(self, filters: LogFilters) -> list[ColumnElement[bool]]:
        """The WHERE conditions of ``filters`` (analytics builds its own queries on them)."""
        return self._conditions(filters)

    def _conditions(self, filters: LogFilters) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [visible(_C.workspace_id)]
        if filters.since is not None:
            conditions.append(_C.created_at >= filters.since)
        if filters.until is not None:
            conditions.append(_C.created_at < filters.until)
        if filters.trace_id is not None:
            conditions.append(_C.trace_id == filters.trace_id)
        if filters.workspace_id is not None:
            conditions.append(_C.workspace_id == filters.workspace_id)
        user = filters.user if filters.user is not None else filters.metadata.get("_user")
        if user is not None:
            conditions.append(_C.end_user == str(user))
        for key, value in filters.metadata.items():
            if key != "_user":
                conditions.append(self._metadata_equals(key, str(value)))
        if providers := filters.values("provider"):
            conditions.append(_C.provider.in_(providers))
        if models := filters.values("model"):
            conditions.append(or_(_C.model_requested.in_(models), _C.model_served.in_(models)))
        if filters.status is not None:
            conditions.append(status_condition(_C.status, filters.status))
        if cache_statuses := filters.values("cache_status"):
            conditions.append(_C.cache_status.in_([value.upper() for value in cache_statuses]))
        if filters.min_cost_micros is not None:
            conditions.append(_C.cost_micros >= filters.min_cost_micros)
        if filters.max_cost_micros is not None:
            conditions.append(_C.cost_micros <= filters.max_cost_micros)
        if filters.min_latency_ms is not None:
            conditions.append(_C.latency_ms >= filters.min_latency_ms)
        if filters.max_latency_ms is not None:
            conditions.append(_C.latency_ms <= filters.max_latency_ms)
        return conditions

    def _metadata_equals(self, key: str, value: str) -> ColumnElement[bool]:
        column = _C.metadata
        if self._dialect == "postgresql":
            # containment (@>) is what the GIN index on metadata serves
            return type_coerce(column, JSONB).contains({key: value})
        condition: ColumnElement[bool] = column[key].as_string() == value
        return condition


def encode_cursor(record: LogRecord, order: Order) -> str:
    """The opaque cursor that continues a listing after ``record``."""
    payload = orjson.dumps([order[0], record.created_at.isoformat(), record.id])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        direction, created, log_id = orjson.loads(raw)
        if direction != order[0] or not isinstance(log_id, str):
            raise ValueError
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor(f"invalid cursor {cursor!r}") from None
    return created_at, log_id


def _to_rows(records: Sequence[LogRecord]) -> list[dict[str, Any]]:
    return [_to_row(record) for record in records]


def _to_row(record: LogRecord) -> dict[str, Any]:
    scrub_record(record)
    return {
        "id": record.id,
        "created_at": record.created_at,
        "trace_id": _clip("trace_id", record.trace_id) or "",
        "span_id": _clip("span_id", record.span_id),
        "parent_span_id": _clip("parent_span_id", record.parent_span_id),
        "span_name": _clip("span_name", record.span_name),
        "workspace_id": record.workspace_id,
        "api_key_id": record.api_key_id,
        "virtual_key": record.virtual_key,
        "provider": _clip("provider", record.provider),
        "model_requested": _clip("model_requested", record.model_requested),
        "model_served": _clip("model_served", record.model_served),
        "endpoint": _clip("endpoint", record.endpoint) or "",
        "status": record.status,
        "stream": record.stream,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cache_similarity": record.cache_similarity,
        "cost_saved_micros": record.cost_saved_micros,
        "cost_micros": record.cost_micros,
        "cost_breakdown": record.cost_breakdown,
        "currency": _clip("currency", record.currency) or "USD",
        "cache_status": _clip("cache_status", record.cache_status) or "",
        "attempts": record.attempts,
        "retries": record.retries,
        "fallbacks": record.fallbacks,
        "metadata": record.metadata,
        "end_user": _clip("end_user", record.user),
        "request_body": _no_nul(record.request_body),
        "response_body": _no_nul(record.response_body),
        "error": _no_nul(record.error),
    }


def _from_row(row: RowMapping) -> LogRecord:
    return LogRecord(
        id=row["id"],
        created_at=row["created_at"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        span_name=row["span_name"],
        workspace_id=row["workspace_id"],
        api_key_id=row["api_key_id"],
        virtual_key=row["virtual_key"],
        provider=row["provider"],
        model_requested=row["model_requested"],
        model_served=row["model_served"],
        endpoint=row["endpoint"],
        status=row["status"],
        stream=row["stream"],
        latency_ms=row["latency_ms"],
        ttft_ms=row["ttft_ms"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cached_tokens=row["cached_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        cache_similarity=row["cache_similarity"],
        cost_saved_micros=row["cost_saved_micros"],
        cost_micros=row["cost_micros"],
        cost_breakdown=row["cost_breakdown"] or {},
        currency=row["currency"],
        cache_status=row["cache_status"],
        attempts=row["attempts"] or [],
        retries=row["retries"],
        fallbacks=row["fallbacks"],
        metadata=row["metadata"] or {},
        user=row["end_user"],
        request_body=row.get("request_body"),
        response_body=row.get("response_body"),
        error=row["error"],
    )


def _clip(column: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd") if "\x00" in value else value
    limit = _LIMITS[column]
    return value if len(value) <= limit else value[:limit]


def _no_nul(value: str | None) -> str | None:
    """PostgreSQL rejects NUL characters in text (JSON columns: see ``engine.json_dumps``)."""
    if value is not None and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value
