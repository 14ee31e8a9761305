"""The database engine: an embedded SQLite file by default, PostgreSQL at scale.

SQLite runs in WAL mode (readers never block the writer) with ``synchronous=NORMAL`` (a power
cut may lose the last transactions, never corrupts the file), foreign keys on and a busy timeout so
that concurrent writers wait instead of failing. SQLAlchemy, not the sqlite3 module, issues
``BEGIN``, so transactions (DDL included) behave as on PostgreSQL; a connection with the
``sqlite_immediate`` execution option begins with ``BEGIN IMMEDIATE`` and takes the write lock
up front, which writers use to avoid lock-upgrade deadlocks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = ["DATABASE_FILE", "create_engine", "database_url", "json_dumps"]

DATABASE_FILE = "wayport.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000


# an escaped NUL (\u0000) not itself preceded by an escaped backslash
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def json_dumps(value: Any) -> str:
    """JSON for the store: orjson, non-string keys allowed, anything else as its ``str``.

    NUL characters become U+FFFD: PostgreSQL's JSONB refuses an escaped NUL.
    """
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text


def database_url(url: str | None, data_dir: Path) -> URL:
    """The SQLAlchemy async URL for a ``WAYPORT_DATABASE_URL`` value (or the embedded default)."""
    if not url:
        return URL.create("sqlite+aiosqlite", database=str(data_dir / DATABASE_FILE))
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        query = dict(parsed.query)
        # libpq's sslmode is asyncpg's ssl (same values: disable, require, verify-full, ...)
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
            parsed = parsed.set(query=query)
    elif parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(
            f"unsupported database URL scheme '{parsed.drivername}': use postgresql://... or sqlite:///path"
        )
    return parsed


def create_engine(url: str | None, data_dir: Path, **options: Any) -> AsyncEngine:
    """An async engine for ``url`` (``WAYPORT_DATABASE_URL``), or for ``<data_dir>/wayport.db``
    when it is ``None``. Extra ``options`` go to :func:`sqlalchemy.ext.asyncio.create_async_engine`.

    Creates ``data_dir`` (mode 0700) for the embedded database; opens no connection.
    """
    target = database_url(url, data_dir)
    options.setdefault("json_serializer", json_dumps)
    options.setdefault("json_deserializer", orjson.loads)
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target, data_dir if not url else None, options)
    # a database that does not answer fails a write in seconds (the log writer then spools)
    options.setdefault("connect_args", {}).setdefault("timeout", 10)
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 10)
    return create_async_engine(target, **options)


def _sqlite_engine(target: URL, data_dir: Path | None, options: dict[str, Any]) -> AsyncEngine:
    database = target.database or ""
    in_memory = database in ("", ":memory:")
    if data_dir is not None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if in_memory:
        options.setdefault("poolclass", StaticPool)
    connect_args = options.setdefault("connect_args", {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_async_engine(target, **options)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin): the sqlite3 module's implicit
    # transactions skip DDL and SELECT, which breaks transactional migrations.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
