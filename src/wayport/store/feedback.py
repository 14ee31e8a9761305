"""The feedback repository: scores attached to a trace (Portkey's ``/v1/feedback``).

Range checks with helpful messages belong to the API; the table's CHECK constraints only make sure
nothing out of range is ever stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.observability.scrub import scrub
from wayport.store.schema import FeedbackRow
from wayport.store.tenancy import visible, workspace_for_new

__all__ = ["Feedback", "FeedbackRepository"]

_TABLE = cast(Table, FeedbackRow.__table__)
_C = _TABLE.c


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class Feedback:
    """One piece of feedback: ``value`` in -10..10, ``weight`` in 0..1 (default 1)."""

    trace_id: str
    value: int
    weight: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=_utcnow)
    updated_at: datetime | None = None
    # the workspace of the caller that gave it (bound when the feedback is made)
    workspace_id: str | None = field(default_factory=lambda: workspace_for_new(None))


class FeedbackRepository:
    """Feedback in the store, keyed by id and listed by trace."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert_many(self, items: Sequence[Feedback]) -> list[str]:
        """Store ``items`` in one transaction; returns their ids in order."""
        if not items:
            return []
        rows = [
            {
                "id": item.id,
                "trace_id": item.trace_id,
                "value": item.value,
                "weight": item.weight,
                "metadata": scrub(item.metadata),
                "created_at": item.created_at,
                "updated_at": item.updated_at or item.created_at,
                "workspace_id": item.workspace_id,
            }
            for item in items
        ]
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                await connection.execute(_TABLE.insert(), rows)
        return [item.id for item in items]

    async def update(
        self,
        feedback_id: str,
        *,
        value: int | None = None,
        weight: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change the given fields of one feedback; ``False`` when the id is unknown."""
        changes: dict[str, Any] = {"updated_at": _utcnow()}
        if value is not None:
            changes["value"] = value
        if weight is not None:
            changes["weight"] = weight
        if metadata is not None:
            changes["metadata"] = scrub(dict(metadata))
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                result = await connection.execute(
                    update(_TABLE).where(_C.id == feedback_id, visible(_C.workspace_id)).values(changes)
                )
        return bool(getattr(result, "rowcount", 0))

    async def get(self, feedback_id: str) -> Feedback | None:
        async with self._engine.connect() as connection:
            row = (
                (
                    await connection.execute(
                        select(_TABLE).where(_C.id == feedback_id, visible(_C.workspace_id))
                    )
                )
                .mappings()
                .first()
            )
        return _from_row(row) if row is not None else None

    async def list_by_trace(self, trace_id: str) -> list[Feedback]:
        """Every feedback on ``trace_id``, oldest first."""
        statement = (
            select(_TABLE)
            .where(_C.trace_id == trace_id, visible(_C.workspace_id))
            .order_by(_C.created_at, _C.id)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_from_row(row) for row in rows]


def _from_row(row: RowMapping) -> Feedback:
    return Feedback(
        id=row["id"],
        trace_id=row["trace_id"],
        value=row["value"],
        weight=row["weight"],
        workspace_id=row["workspace_id"],
        metadata=row["metadata"] or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
