"""Alembic's environment for the store, for SQLite and PostgreSQL alike.

``wayport.store.migrate`` passes an open connection in ``config.attributes["connection"]``;
Alembic's own command line (used when writing a new revision) gets an async engine from the
``sqlalchemy.url`` option instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from wayport.store.migrate import include_object_for
from wayport.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
elif context.is_offline_mode():
    run_offline(config.get_main_option("sqlalchemy.url") or "sqlite://")
else:
    asyncio.run(run_with_own_engine(config.get_main_option("sqlalchemy.url") or "sqlite+aiosqlite://"))
