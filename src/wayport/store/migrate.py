"""Schema migrations, run from code: ``await upgrade(engine)`` at start-up or by ``wayport db upgrade``.

Alembic is driven through its command API with the connection handed in, so no ``alembic.ini`` is
needed and the scripts are found next to this module (they ship in the wheel). Several processes
may start at once (uvicorn workers, several nodes): on PostgreSQL an advisory lock, on SQLite an
immediate transaction, lets one of them migrate while the others wait and then find nothing to do.

To write a new revision against a scratch database::

    python -m wayport.store.migrate revision "add prompts" sqlite+aiosqlite:////tmp/scratch.db
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_object_for",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key: "wayport" in ASCII, an arbitrary constant shared by every node
_PG_LOCK_KEY = 0x77617970_6F7274


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged scripts, with ``connection`` (or ``url``) to use."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def include_object_for(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` hook: objects declared for another engine only (the GIN index
    on PostgreSQL) are not expected on this one when comparing schema and database."""

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "index" and getattr(obj, "dialect_kwargs", {}).get("postgresql_using"):
            return dialect == "postgresql"
        return True

    return include_object


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database up to ``revision`` (the latest by default); a no-op when it is there."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(sqlite_immediate=True)
        async with connection.begin():
            await connection.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    command.upgrade(alembic_config(connection), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


def head_revision() -> str | None:
    """The latest revision shipped with this version of Wayport."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def main(argv: list[str]) -> int:
    """``revision MESSAGE URL``: autogenerate a revision from the schema against ``URL``."""
    if len(argv) != 3 or argv[0] != "revision":
        print("usage: python -m wayport.store.migrate revision MESSAGE DATABASE_URL", file=sys.stderr)
        return 2
    command.revision(alembic_config(url=argv[2]), message=argv[1], autogenerate=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
