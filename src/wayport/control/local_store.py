"""Opening the configured store from a command (``wayport db``, ``wayport logs``), with errors that
say what to do: where the store is expected, and how to create it or reach it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.settings import Settings
from wayport.store.engine import create_engine, database_url
from wayport.store.migrate import current_revision, head_revision, upgrade

__all__ = ["StoreUnavailable", "describe_store", "is_head", "open_store", "upgrade_store"]

CREATE_HINT = "run `wayport db upgrade` (or start `wayport serve`, which migrates the store at start-up)"


class StoreUnavailable(Exception):
    """The store cannot be used; the message says why and what to do."""


def describe_store(settings: Settings) -> str:
    """Where the store is, for messages (passwords masked)."""
    target = database_url(settings.database_url, settings.data_dir)
    file = _sqlite_file(target)
    if target.get_backend_name() == "sqlite":
        return f"SQLite file {file}" if file else "in-memory SQLite"
    return f"PostgreSQL at {target.render_as_string(hide_password=True)}"


def _sqlite_file(target: URL) -> Path | None:
    database = target.database or ""
    if target.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


async def open_store(settings: Settings) -> AsyncEngine:
    """An engine on the existing, migrated store; :class:`StoreUnavailable` otherwise."""
    target = database_url(settings.database_url, settings.data_dir)
    file = _sqlite_file(target)
    where = describe_store(settings)
    if file is not None and not file.exists():
        raise StoreUnavailable(f"there is no store yet ({where} does not exist): {CREATE_HINT}")
    engine = create_engine(settings.database_url, settings.data_dir)
    try:
        revision = await current_revision(engine)
    except (OSError, SQLAlchemyError) as exc:
        await engine.dispose()
        raise StoreUnavailable(_unreachable(where, exc)) from None
    if revision is None:
        await engine.dispose()
        raise StoreUnavailable(f"the store ({where}) has no tables yet: {CREATE_HINT}")
    return engine


async def upgrade_store(settings: Settings) -> tuple[str | None, str | None]:
    """Migrate the store to the latest revision (creating an embedded one); ``(before, after)``."""
    engine = create_engine(settings.database_url, settings.data_dir)
    try:
        before = await current_revision(engine)
        await upgrade(engine)
        after = await current_revision(engine)
    except (OSError, SQLAlchemyError) as exc:
        raise StoreUnavailable(_unreachable(describe_store(settings), exc)) from None
    finally:
        await engine.dispose()
    return before, after


def is_head(revision: str | None) -> bool:
    """Whether ``revision`` is the latest this version of Wayport ships."""
    return revision is not None and revision == head_revision()


def _unreachable(where: str, exc: BaseException) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip()
    reason = reason.splitlines()[0] if reason else type(exc).__name__
    return (
        f"cannot use the store ({where}): {reason}. Check WAYPORT_DATABASE_URL and that the database "
        "server is running and reachable"
    )
