"""The log store, the same suite on SQLite (a temp file) and PostgreSQL (WAYPORT_TEST_DATABASE_URL).

Each PostgreSQL test runs in a schema of its own, dropped afterwards, so parallel runs never meet.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wayport.observability.record import LogRecord
from wayport.store import InvalidCursor, LogFilters, LogRepository, create_engine, upgrade
from wayport.store.migrate import current_revision, head_revision, include_object_for
from wayport.store.schema import Base

PG_URL = os.environ.get("WAYPORT_TEST_DATABASE_URL")
PG_SKIP_REASON = (
    "WAYPORT_TEST_DATABASE_URL is not set; the PostgreSQL half of the store suite needs it "
    "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
)
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@asynccontextmanager
async def store_engine(kind: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        engine = create_engine(None, tmp_path)
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"wayport_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL, tmp_path)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(PG_URL, tmp_path, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with store_engine(request.param, tmp_path) as engine:
        await upgrade(engine)
        yield engine


@pytest.fixture
def repo(engine: AsyncEngine) -> LogRepository:
    return LogRepository(engine)


def make_record(n: int, **fields: Any) -> LogRecord:
    values: dict[str, Any] = {
        "trace_id": f"trace-{n % 7}",
        "created_at": T0 + timedelta(seconds=n),
        "provider": ["openai", "anthropic", "google"][n % 3],
        "model_requested": ["gpt-4o", "claude-3-5-sonnet", "gemini-1.5-flash"][n % 3],
        "model_served": ["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "gemini-1.5-flash-002"][n % 3],
        "status": [200, 200, 429, 500, 400, 200][n % 6],
        "latency_ms": 100 + n * 10,
        "cost_micros": None if n % 5 == 0 else n * 100,
        "cache_status": ["HIT", "MISS", "DISABLED"][n % 3],
        "metadata": {"_user": f"user-{n % 4}", "env": "prod" if n % 2 else "dev"},
        "prompt_tokens": n,
        "completion_tokens": 2 * n,
    }
    values.update(fields)
    return LogRecord(**values)


# -- migrations ---------------------------------------------------------------------------------


async def test_migrations_run_twice_and_match_the_schema(engine: AsyncEngine) -> None:
    await upgrade(engine)  # the fixture ran it once already
    assert await current_revision(engine) == head_revision()

    def diff(sync_connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_connection,
            opts={"compare_type": True, "include_object": include_object_for(sync_connection.dialect.name)},
        )
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_concurrent_upgrades_on_a_fresh_database_all_succeed(kind: str, tmp_path: Path) -> None:
    # several workers or nodes starting at once: one migrates, the others wait and find it done
    async with store_engine(kind, tmp_path) as engine:
        await asyncio.gather(*(upgrade(engine) for _ in range(4)))
        assert await current_revision(engine) == head_revision()


# -- insert and get -----------------------------------------------------------------------------


async def test_insert_then_get_returns_every_field(repo: LogRepository) -> None:
    record = LogRecord(
        trace_id="t-1",
        span_id="s-1",
        parent_span_id="p-1",
        span_name="chat",
        created_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        provider="anthropic",
        model_requested="claude-3-5-sonnet",
        model_served="claude-3-5-sonnet-20241022",
        endpoint="chatComplete",
        status=200,
        stream=True,
        latency_ms=1234,
        ttft_ms=321,
        prompt_tokens=5000,
        completion_tokens=1000,
        cached_tokens=2000,
        cache_write_tokens=1500,
        reasoning_tokens=250,
        cost_micros=25725,
        cost_breakdown={"input": 4500, "cached_input": 600, "cache_write": 5625, "output": 15000},
        cache_status="MISS",
        attempts=[
            {"target_path": "0", "provider": "openai", "status": 429, "latency_ms": 12, "retry_index": 0},
            {
                "target_path": "1",
                "provider": "anthropic",
                "status": 200,
                "latency_ms": 1200,
                "retry_index": 0,
            },
        ],
        retries=1,
        fallbacks=1,
        metadata={"_user": "alice", "team": "search", "ünï": "cødé"},
        request_body='{"model":"claude-3-5-sonnet","messages":[]}',
        response_body='{"id":"msg_1"}',
        error=None,
    )
    await repo.insert_many([record])
    stored = await repo.get(record.id)
    assert stored == record
    assert stored is not None and stored.created_at.tzinfo is not None
    assert stored.user == "alice"


async def test_get_of_an_unknown_id_is_none(repo: LogRepository) -> None:
    assert await repo.get("no-such-id") is None


async def test_inserting_the_same_ids_again_adds_nothing(repo: LogRepository) -> None:
    records = [make_record(n) for n in range(5)]
    await repo.insert_many(records)
    await repo.insert_many(records + [make_record(5)])
    assert await repo.count() == 6


async def test_over_long_strings_and_nul_characters_are_stored_safely(repo: LogRepository) -> None:
    record = make_record(1, trace_id="t" * 1000, error="bad\x00byte", metadata={"k": "v\x00"})
    await repo.insert_many([record])
    stored = await repo.get(record.id)
    assert stored is not None
    assert stored.trace_id == "t" * 255
    assert stored.error == "bad\ufffdbyte"
    assert stored.metadata == {"k": "v\ufffd"}


# -- filters ------------------------------------------------------------------------------------

DATASET = [make_record(n) for n in range(60)]

FILTER_CASES: list[tuple[str, LogFilters, Callable[[LogRecord], bool]]] = [
    ("no filter", LogFilters(), lambda r: True),
    (
        "time range",
        LogFilters(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20)),
        lambda r: T0 + timedelta(seconds=10) <= r.created_at < T0 + timedelta(seconds=20),
    ),
    ("trace id", LogFilters(trace_id="trace-3"), lambda r: r.trace_id == "trace-3"),
    ("metadata key", LogFilters(metadata={"env": "prod"}), lambda r: r.metadata["env"] == "prod"),
    ("metadata _user", LogFilters(metadata={"_user": "user-2"}), lambda r: r.user == "user-2"),
    (
        "metadata and user together",
        LogFilters(metadata={"_user": "user-1", "env": "prod"}),
        lambda r: r.user == "user-1" and r.metadata["env"] == "prod",
    ),
    ("metadata no match", LogFilters(metadata={"env": "staging"}), lambda r: False),
    ("user", LogFilters(user="user-3"), lambda r: r.user == "user-3"),
    ("provider", LogFilters(provider="anthropic"), lambda r: r.provider == "anthropic"),
    ("providers", LogFilters(provider=["openai", "google"]), lambda r: r.provider in ("openai", "google")),
    ("model requested", LogFilters(model="gpt-4o"), lambda r: r.model_requested == "gpt-4o"),
    (
        "model served",
        LogFilters(model="claude-3-5-sonnet-20241022"),
        lambda r: r.model_served == "claude-3-5-sonnet-20241022",
    ),
    ("status exact", LogFilters(status=429), lambda r: r.status == 429),
    ("status class", LogFilters(status="4xx"), lambda r: 400 <= r.status < 500),
    ("status list", LogFilters(status=["5xx", "200"]), lambda r: r.status >= 500 or r.status == 200),
    ("cache status", LogFilters(cache_status="hit"), lambda r: r.cache_status == "HIT"),
    (
        "cost range",
        LogFilters(min_cost_micros=1000, max_cost_micros=3000),
        lambda r: r.cost_micros is not None and 1000 <= r.cost_micros <= 3000,
    ),
    (
        "latency range",
        LogFilters(min_latency_ms=200, max_latency_ms=400),
        lambda r: 200 <= r.latency_ms <= 400,
    ),
    (
        "combined",
        LogFilters(provider="openai", status="2xx", since=T0 + timedelta(seconds=5)),
        lambda r: (
            r.provider == "openai" and 200 <= r.status < 300 and r.created_at >= T0 + timedelta(seconds=5)
        ),
    ),
]


@pytest.mark.parametrize(
    ("filters", "predicate"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES]
)
async def test_filter_returns_exactly_the_matching_logs(
    repo: LogRepository, filters: LogFilters, predicate: Callable[[LogRecord], bool]
) -> None:
    await repo.insert_many([LogRecord.from_dict(r.to_dict()) for r in DATASET])
    expected = [r.id for r in sorted(DATASET, key=lambda r: r.created_at, reverse=True) if predicate(r)]
    page = await repo.query(filters, limit=1000)
    assert [r.id for r in page.records] == expected
    assert await repo.count(filters) == len(expected)


@pytest.mark.parametrize("status", ["4yy", "99", 700, ["200", "oops"]])
def test_a_bad_status_filter_names_the_value(status: Any) -> None:
    with pytest.raises(ValueError, match="invalid status filter"):
        LogFilters(status=status)


def test_naive_time_filters_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        LogFilters(since=datetime(2025, 1, 1))


# -- pagination ---------------------------------------------------------------------------------


async def test_pages_leave_out_bodies_unless_asked(repo: LogRepository) -> None:
    await repo.insert_many([make_record(1, request_body="{}", response_body="{}")])
    assert (await repo.query()).records[0].request_body is None
    assert (await repo.query(include_bodies=True)).records[0].request_body == "{}"


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_pages_under_concurrent_inserts_never_repeat_or_skip(repo: LogRepository, order: Any) -> None:
    # 300 logs, many sharing a timestamp so that the id breaks ties
    existing = [make_record(n, created_at=T0 + timedelta(seconds=n // 3)) for n in range(300)]
    await repo.insert_many(existing)
    stop = asyncio.Event()
    inserted = 0

    async def insert_more() -> None:
        nonlocal inserted
        n = 1000
        while not stop.is_set():
            # new traffic (later timestamps) and late arrivals inside the paged range
            await repo.insert_many(
                [
                    make_record(n, created_at=datetime.now(UTC)),
                    make_record(n + 1, created_at=T0 + timedelta(seconds=(n % 100), microseconds=n)),
                ]
            )
            n += 2
            inserted += 2
            await asyncio.sleep(0)

    inserter = asyncio.create_task(insert_more())
    seen: list[LogRecord] = []
    cursor: str | None = None
    try:
        while True:
            page = await repo.query(LogFilters(until=T0 + timedelta(days=1)), cursor, limit=37, order=order)
            seen.extend(page.records)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            await asyncio.sleep(0.001)
    finally:
        stop.set()
        await inserter
    assert inserted >= 10, "the inserts did not overlap the paging"
    ids = [r.id for r in seen]
    assert len(ids) == len(set(ids)), "a log was returned twice"
    assert {r.id for r in existing} <= set(ids), "a log that existed before paging was skipped"
    keys = [(r.created_at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=order == "desc")


async def test_a_cursor_from_elsewhere_is_refused(repo: LogRepository) -> None:
    await repo.insert_many([make_record(n) for n in range(3)])
    page = await repo.query(limit=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await repo.query(cursor=page.next_cursor, order="asc")
    with pytest.raises(InvalidCursor):
        await repo.query(cursor="not-a-cursor")


# -- export and retention -----------------------------------------------------------------------


async def test_export_of_100k_logs_keeps_memory_bounded(repo: LogRepository) -> None:
    total = 100_000
    for start in range(0, total, 10_000):
        await repo.insert_many(
            [
                LogRecord(
                    trace_id=f"t{n % 97}",
                    created_at=T0 + timedelta(milliseconds=n),
                    provider="openai",
                    model_requested="gpt-4o",
                    metadata={"_user": f"u{n % 13}"},
                    request_body='{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}',
                    response_body='{"choices":[{"message":{"content":"hi there"}}]}',
                )
                for n in range(start, start + 10_000)
            ]
        )
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        previous: tuple[datetime, str] | None = None
        async for record in repo.export(batch_size=1000):
            key = (record.created_at, record.id)
            assert previous is None or key > previous
            previous = key
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == total
    # one batch of 1,000 records is a few MB; all 100,000 at once would be several hundred
    print(f"export of {total} logs peaked at {peak / 1e6:.1f} MB")
    assert peak < 16 * 1024 * 1024, f"export peaked at {peak / 1e6:.1f} MB"


async def test_delete_before_removes_only_older_logs(repo: LogRepository) -> None:
    await repo.insert_many([make_record(n) for n in range(30)])
    deleted = await repo.delete_before(T0 + timedelta(seconds=10), batch_size=4)
    assert deleted == 10
    assert await repo.count() == 20
    assert await repo.count(LogFilters(until=T0 + timedelta(seconds=10))) == 0


# -- secrets ------------------------------------------------------------------------------------

SECRETS = {
    "openai": "sk-proj-Abc123Def456Ghi789Jkl012Mno345",
    "anthropic": "sk-ant-api03-ZyXwVuTsRqPoNmLkJiHgFeDcBa0987",
    "google": "AIzaSyD-1234567890abcdefghijklmnopqrstu",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_access": "AKIAIOSFODNN7EXAMPLE",
    "gateway": "wp-live-0123456789abcdefghijklmnop",
    "custom": "hunter2-very-private",
}


def records_carrying_secrets() -> list[LogRecord]:
    s = SECRETS
    headers = {
        "Authorization": f"Bearer {s['openai']}",
        "x-api-key": s["anthropic"],
        "x-portkey-api-key": s["gateway"],
        "content-type": "application/json",
    }
    return [
        LogRecord(
            trace_id="secret-1",
            metadata={"_user": "bob", "headers": headers, "password": s["custom"]},
            request_body=orjson.dumps(
                {
                    "model": "gpt-4o",
                    "aws_secret_access_key": s["aws_secret"],
                    "aws_access_key_id": s["aws_access"],
                    "messages": [{"role": "user", "content": f"my key is {s['openai']}"}],
                }
            ).decode(),
            response_body=orjson.dumps(
                {"error": {"message": f"Incorrect API key provided: {s['openai']}"}}
            ).decode(),
            attempts=[
                {
                    "target_path": "0",
                    "provider": "google",
                    "status": 400,
                    "error": f"POST https://generativelanguage.googleapis.com/v1/x?key={s['google']} failed",
                }
            ],
            error=f"upstream said: Authorization: Bearer {s['openai']}; api_key={s['custom']}",
        ),
        LogRecord(
            trace_id="secret-2",
            # a truncated body: JSON that does not parse any more
            request_body='{"headers": {"x-api-key": "'
            + s["custom"]
            + '", "authorization": "Basic '
            + s["aws_secret"],
            metadata={"client_secret": s["custom"]},
        ),
    ]


async def test_secrets_never_reach_the_stored_rows(engine: AsyncEngine, repo: LogRepository) -> None:
    await repo.insert_many(records_carrying_secrets())
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = (await connection.execute(text("SELECT logs::text FROM logs"))).scalars().all()
        else:
            rows = [repr(tuple(row)) for row in (await connection.execute(text("SELECT * FROM logs"))).all()]
    raw = "\n".join(rows)
    assert "secret-1" in raw and "secret-2" in raw
    for name, secret in SECRETS.items():
        assert secret not in raw, f"the {name} secret was stored"
    assert "[REDACTED]" in raw
