"""Following the store's changes without reading it when nothing changed.

Caches of the store (API keys, virtual keys, saved configs) re-read what changed every fraction
of a second, so that a change made by another worker, node or the CLI arrives quickly. Each of
those reads is a round trip through SQLAlchemy and the driver's thread: together they kept an
idle gateway at about 1 % of a core. On the embedded SQLite store, ``PRAGMA data_version`` says
in microseconds, on a connection of its own, whether anything was committed since it was last
asked; a round with no commit is skipped. PostgreSQL has no such counter: there every round reads.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SqliteChangeProbe", "change_probe", "poll"]

log = logging.getLogger("wayport")


class SqliteChangeProbe:
    """The commit counter of a SQLite database file, as seen from a connection that never writes:
    it moves whenever any other connection (of this process or another) commits."""

    def __init__(self, path: str) -> None:
        # timeout 0: never wait for a lock on the event loop; a busy file reads as "unknown"
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)

    def version(self) -> int | None:
        """The counter now, or ``None`` when it cannot be read (then the caller reads the store)."""
        try:
            row = self._db.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        return int(row[0]) if row else None

    def close(self) -> None:
        self._db.close()


def change_probe(engine: AsyncEngine) -> SqliteChangeProbe | None:
    """A probe for ``engine``'s database when it is a SQLite file; ``None`` otherwise."""
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return SqliteChangeProbe(database)


async def poll(
    refresh: Callable[[], Awaitable[object]],
    interval_s: float,
    probe: SqliteChangeProbe | None,
    what: str,
) -> None:
    """Run ``refresh`` every ``interval_s`` seconds, forever (run it as a task), skipping the rounds
    in which ``probe`` saw no commit since the last refresh that succeeded. A failing refresh is
    logged and tried again the next round."""
    seen: int | None = None
    while True:
        await asyncio.sleep(interval_s)
        # read before the refresh: a commit made while it runs moves the counter for the next round
        version = probe.version() if probe is not None else None
        if version is not None and version == seen:
            continue
        try:
            await refresh()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not refresh %s; trying again in %g s", what, interval_s)
            continue
        seen = version
