"""The caches of the store read it only after a commit (SQLite's ``PRAGMA data_version``)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from wayport.store.changes import SqliteChangeProbe, change_probe, poll
from wayport.store.engine import create_engine


def commit_elsewhere(path: Path) -> None:
    """A write by another connection: another worker, another node, the CLI."""
    with sqlite3.connect(path) as db:
        db.execute("create table if not exists t (x integer)")
        db.execute("insert into t values (1)")


def test_the_counter_moves_only_when_another_connection_commits(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as db:
        db.execute("pragma journal_mode=wal")
    probe = SqliteChangeProbe(str(path))
    try:
        first = probe.version()
        assert first is not None and probe.version() == first
        commit_elsewhere(path)
        second = probe.version()
        assert second is not None and second != first
        assert probe.version() == second
    finally:
        probe.close()


def test_only_a_sqlite_file_has_a_probe(tmp_path: Path) -> None:
    assert change_probe(create_engine(None, tmp_path)) is not None  # the embedded store
    assert change_probe(create_engine("sqlite://", tmp_path)) is None  # in memory: one process
    assert change_probe(create_engine("postgresql://u@127.0.0.1:1/db", tmp_path)) is None


async def test_polling_reads_the_store_after_each_commit_and_not_otherwise(tmp_path: Path) -> None:
    engine = create_engine(None, tmp_path)
    probe = change_probe(engine)
    assert probe is not None
    commit_elsewhere(tmp_path / "wayport.db")
    reads = 0
    fail_next = False

    async def refresh() -> None:
        nonlocal reads, fail_next
        reads += 1
        if fail_next:
            fail_next = False
            raise RuntimeError("the store is down")

    task = asyncio.create_task(poll(refresh, 0.01, probe, "the test cache"))
    try:
        await asyncio.sleep(0.2)
        assert reads == 1  # the first round reads; twenty quiet rounds after it do not
        commit_elsewhere(tmp_path / "wayport.db")
        await asyncio.sleep(0.1)
        assert reads == 2
        fail_next = True  # a failed read is tried again the next round, though nothing changed
        commit_elsewhere(tmp_path / "wayport.db")
        await asyncio.sleep(0.1)
        assert reads == 4
    finally:
        task.cancel()
        probe.close()
        await engine.dispose()
