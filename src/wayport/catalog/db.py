"""Transactions for the catalog's repositories: writers take SQLite's write lock up front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ColumnElement, Table, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wayport.catalog.ids import utcnow

__all__ = ["bump_version", "writing"]


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One write transaction (``BEGIN IMMEDIATE`` on SQLite, so writers never deadlock upgrading)."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(sqlite_immediate=True)
        async with connection.begin():
            yield connection


async def bump_version(
    connection: AsyncConnection, table: Table, where: ColumnElement[bool], **values: Any
) -> tuple[str, int] | None:
    """Add one to ``current_version`` of the row matching ``where`` and return ``(id, new number)``.

    One conditional UPDATE, so concurrent writers (nodes, workers) each get a number of their own;
    ``None`` when no row matches.
    """
    statement = (
        update(table)
        .where(where)
        .values(current_version=table.c.current_version + 1, updated_at=utcnow(), **values)
        .returning(table.c.id, table.c.current_version)
    )
    row = (await connection.execute(statement)).first()
    return (row[0], row[1]) if row is not None else None
