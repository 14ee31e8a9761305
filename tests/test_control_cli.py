"""``wayport db upgrade``, ``wayport logs tail`` and ``wayport logs export`` through typer's CliRunner."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.test_control_harness import make_log
from wayport.cli import cli
from wayport.control.tail import LogTail, parse_moment
from wayport.observability.record import LogRecord
from wayport.store import LogRepository, create_engine, upgrade
from wayport.store.migrate import head_revision

NOW = datetime.now(UTC).replace(microsecond=0)
RECENT = [make_log(n, created_at=NOW - timedelta(minutes=5) + timedelta(seconds=n)) for n in range(6)]
OLD = make_log(99, created_at=NOW - timedelta(hours=3), trace_id="old-trace")


def run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {"WAYPORT_DATA_DIR": str(data_dir), "WAYPORT_DATABASE_URL": None, "WAYPORT_CONFIG_FILE": None}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def seed(data_dir: Path, records: Sequence[LogRecord]) -> None:
    async def insert() -> None:
        engine = create_engine(None, data_dir)
        try:
            await upgrade(engine)
            await LogRepository(engine).insert_many(records)
        finally:
            await engine.dispose()

    asyncio.run(insert())


@pytest.fixture
def store(tmp_path: Path) -> Path:
    seed(tmp_path, [*RECENT, OLD])
    return tmp_path


# -- db upgrade ---------------------------------------------------------------------------------


def test_db_upgrade_creates_the_store_and_prints_its_revision(tmp_path: Path) -> None:
    code, out, _err = run(tmp_path / "data", "db", "upgrade")
    assert code == 0
    assert f"upgraded from an empty database to revision {head_revision()} (latest)" in out
    assert (tmp_path / "data" / "wayport.db").exists()
    code, out, _err = run(tmp_path / "data", "db", "upgrade")
    assert code == 0 and f"already at revision {head_revision()} (latest)" in out


def test_db_upgrade_says_what_to_check_when_postgresql_is_unreachable(tmp_path: Path) -> None:
    env = {"WAYPORT_DATA_DIR": str(tmp_path), "WAYPORT_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x"}
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert result.exit_code == 1
    assert "WAYPORT_DATABASE_URL" in result.stderr and "secret" not in result.stderr


# -- logs tail ------------------------------------------------------------------------------------


def test_tail_without_a_store_says_how_to_create_it(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "logs", "tail", "--once")
    assert code == 1 and out == ""
    assert "there is no store yet" in err and "wayport db upgrade" in err and "wayport serve" in err
    assert not (tmp_path / "wayport.db").exists()


def test_tail_once_prints_the_recent_logs_as_table_rows(store: Path) -> None:
    code, out, _err = run(store, "logs", "tail", "--once", "--since", "10m")
    assert code == 0
    header, *rows = out.splitlines()
    for column in (
        "time (UTC)",
        "trace id",
        "provider",
        "model",
        "status",
        "latency ms",
        "ttft ms",
        "cost USD",
    ):
        assert column in header
    assert len(rows) == len(RECENT)
    first = rows[1].split()  # n = 1: anthropic, 200, 110 ms, ttft 41, 1/2 tokens, 100 micro-dollars, MISS
    assert first[2:] == [
        "trace-1",
        "anthropic",
        "claude-3-5-sonnet-20241022",
        "200",
        "110",
        "41",
        "1/2",
        "0.000100",
        "MISS",
    ]
    assert rows[0].split()[-2:] == ["-", "HIT"]  # n = 0: cost unknown
    assert "old-trace" not in out


def test_tail_filters_and_reaches_further_back_with_since(store: Path) -> None:
    code, out, _err = run(store, "logs", "tail", "--once", "--since", "1d", "--provider", "openai")
    assert code == 0
    rows = out.splitlines()[1:]
    assert [row.split()[2] for row in rows] == ["old-trace", "trace-0", "trace-3"]


def test_tail_with_nothing_new_says_so(store: Path) -> None:
    code, out, _err = run(store, "logs", "tail", "--once", "--since", "10m", "--trace-id", "nobody")
    assert code == 0 and "(no logs since" in out


def test_tail_rejects_a_bad_since(store: Path) -> None:
    code, _out, err = run(store, "logs", "tail", "--once", "--since", "yesterday")
    assert code == 2 and "--since" in err


async def test_log_tail_returns_each_log_once_including_late_writes(tmp_path: Path) -> None:
    engine = create_engine(None, tmp_path)
    try:
        await upgrade(engine)
        repo = LogRepository(engine)
        tail = LogTail(repo, NOW - timedelta(minutes=1), grace=timedelta(seconds=10))

        async def polled() -> list[str]:
            return [record.trace_id async for batch in tail.poll() for record in batch]

        assert await polled() == []
        second = timedelta(seconds=1)
        await repo.insert_many(
            [make_log(1, trace_id="a", created_at=NOW), make_log(2, trace_id="b", created_at=NOW + second)]
        )
        assert await polled() == ["a", "b"]
        assert await polled() == []
        # written late, but within the grace window of the newest log shown
        await repo.insert_many([make_log(3, trace_id="late", created_at=NOW - timedelta(seconds=5))])
        await repo.insert_many([make_log(4, trace_id="next", created_at=NOW + 2 * second)])
        assert await polled() == ["late", "next"]
    finally:
        await engine.dispose()


def test_parse_moment_takes_durations_and_timestamps() -> None:
    assert parse_moment("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_moment("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_moment("2025-03-01T12:00:00Z") == datetime(2025, 3, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_moment("soon")


# -- logs export ------------------------------------------------------------------------------------


def test_export_jsonl_writes_every_log_oldest_first_with_a_progress_bar(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "logs.jsonl"
    code, out, err = run(store, "logs", "export", "--format", "jsonl", "--output", str(target))
    assert code == 0, err
    assert f"exported 7 logs to {target}" in out
    assert "7/7" in err  # the progress bar, on stderr
    items = [orjson.loads(line) for line in target.read_text().splitlines()]
    assert [item["trace_id"] for item in items] == ["old-trace", *[r.trace_id for r in RECENT]]
    assert items[2]["cost_usd"] == 0.0001 and items[2]["request_body"] == '{"n": 1}'
    assert not list(tmp_path.glob("*.partial"))


def test_export_csv_with_filters_and_without_bodies(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "logs.csv"
    args = ["--format", "csv", "-o", str(target), "--since", "1h", "--status", "2xx", "--no-bodies"]
    code, out, err = run(store, "logs", "export", *args, "--metadata", "env=prod")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    expected = [r for r in RECENT if r.status < 300 and r.metadata["env"] == "prod"]
    assert [row["id"] for row in rows] == [r.id for r in expected]
    assert "request_body" not in rows[0]
    assert f"exported {len(expected)} logs" in out


def test_export_rejects_bad_filters(store: Path, tmp_path: Path) -> None:
    target = str(tmp_path / "x.jsonl")
    assert run(store, "logs", "export", "-o", target, "--metadata", "novalue")[0] == 2
    assert run(store, "logs", "export", "-o", target, "--status", "6xx")[0] == 2
    assert run(store, "logs", "export", "-o", target, "--format", "xml")[0] == 2


def test_export_into_a_missing_directory_says_so(store: Path, tmp_path: Path) -> None:
    code, _out, err = run(store, "logs", "export", "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert code == 1 and "cannot write" in err
