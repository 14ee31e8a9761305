"""The feedback store, on SQLite and PostgreSQL (see test_store_logs for the engines)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.test_catalog_harness import store_engine as migrated_store
from wayport.store import Feedback, FeedbackRepository

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_store(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
def repo(engine: AsyncEngine) -> FeedbackRepository:
    return FeedbackRepository(engine)


async def test_insert_many_returns_ids_and_lists_by_trace(repo: FeedbackRepository) -> None:
    items = [
        Feedback(trace_id="t-1", value=1, created_at=T0),
        Feedback(
            trace_id="t-1", value=-3, weight=0.5, metadata={"_user": "u1"}, created_at=T0 + timedelta(1)
        ),
        Feedback(trace_id="t-2", value=10, created_at=T0),
    ]
    ids = await repo.insert_many(items)
    assert ids == [item.id for item in items]
    listed = await repo.list_by_trace("t-1")
    assert [(f.value, f.weight, f.metadata) for f in listed] == [(1, 1.0, {}), (-3, 0.5, {"_user": "u1"})]
    assert all(f.updated_at == f.created_at for f in listed)
    assert await repo.list_by_trace("nobody") == []


async def test_update_changes_only_the_given_fields(repo: FeedbackRepository) -> None:
    item = Feedback(trace_id="t-1", value=1, weight=0.25, metadata={"a": "b"}, created_at=T0)
    await repo.insert_many([item])
    assert await repo.update(item.id, value=-10)
    stored = await repo.get(item.id)
    assert stored is not None
    assert (stored.value, stored.weight, stored.metadata) == (-10, 0.25, {"a": "b"})
    assert stored.updated_at is not None and stored.updated_at > stored.created_at


async def test_update_of_an_unknown_id_reports_false(repo: FeedbackRepository) -> None:
    assert not await repo.update("no-such-id", value=1)


@pytest.mark.parametrize(("value", "weight"), [(11, 1.0), (-11, 1.0), (0, 1.5), (0, -0.1)])
async def test_the_table_refuses_out_of_range_values(
    repo: FeedbackRepository, value: int, weight: float
) -> None:
    with pytest.raises(IntegrityError):
        await repo.insert_many([Feedback(trace_id="t", value=value, weight=weight)])


async def test_feedback_metadata_is_scrubbed(engine: AsyncEngine, repo: FeedbackRepository) -> None:
    await repo.insert_many(
        [Feedback(trace_id="t", value=1, metadata={"api_key": "sk-live-1234567890abcdefgh"})]
    )
    async with engine.connect() as connection:
        raw = str((await connection.execute(text("SELECT metadata FROM feedback"))).scalar_one())
    assert "sk-live-1234567890abcdefgh" not in raw
