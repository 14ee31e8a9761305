"""Budgets: Portkey's ``usage_limits`` shape, periods, and the ledger's exactness on SQLite (a temp
file) and PostgreSQL (WAYPORT_TEST_DATABASE_URL), concurrent callers and separate nodes included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.test_catalog_harness import store_engine as migrated_store
from tests.test_store_logs import PG_SKIP_REASON, PG_URL
from wayport.security.budgets import BudgetLedger, Claim, Reservation, period_key, reset_at
from wayport.security.limits import (
    BudgetKind,
    BudgetLimit,
    LimitError,
    RateKind,
    RateLimit,
    Reset,
    parse_rate_limits,
    parse_usage_limits,
)
from wayport.store import create_engine

NOW = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)  # a Thursday
COST_5 = BudgetLimit(BudgetKind.COST, 5_000_000, reset=Reset.MONTHLY)
TOKENS_1000 = BudgetLimit(BudgetKind.TOKENS, 1000)


# -- the shapes ---------------------------------------------------------------------------------


def test_a_cost_budget_is_parsed_into_micro_dollars_without_floats() -> None:
    (budget,) = parse_usage_limits(
        {"credit_limit": 0.1, "type": "cost", "alert_threshold": 0.07, "periodic_reset": "monthly"}
    )
    assert budget == BudgetLimit(BudgetKind.COST, 100_000, 70_000, Reset.MONTHLY)


def test_a_cost_and_a_token_budget_come_as_a_list() -> None:
    budgets = parse_usage_limits(
        [
            {"credit_limit": "12.5", "type": "cost"},
            {"credit_limit": 1000, "type": "tokens", "periodic_reset": "daily"},
        ]
    )
    assert budgets == (
        BudgetLimit(BudgetKind.COST, 12_500_000),
        BudgetLimit(BudgetKind.TOKENS, 1000, None, Reset.DAILY),
    )
    assert parse_usage_limits(None) == ()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"type": "cost"}, "usage_limits.credit_limit: required"),
        ({"credit_limit": True}, "usage_limits.credit_limit: expected a number"),
        ({"credit_limit": -1}, "usage_limits.credit_limit: must be >= 0"),
        ({"credit_limit": 10.5, "type": "tokens"}, "usage_limits.credit_limit: a token count"),
        ({"credit_limit": 1, "type": "euros"}, "usage_limits.type: expected one of"),
        ({"credit_limit": 1, "periodic_reset": "yearly"}, "usage_limits.periodic_reset: expected one of"),
        ({"credit_limit": 1, "alert_threshold": 2}, "usage_limits.alert_threshold: must not exceed"),
        ([{"credit_limit": 1}, {"credit_limit": "x"}], "usage_limits[1].credit_limit: expected a number"),
        ([{"credit_limit": 1}, {"credit_limit": 2}], "usage_limits[1]: a second cost budget"),
        ("five dollars", "usage_limits: expected an object"),
    ],
)
def test_bad_usage_limits_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(LimitError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_usage_limits(value)


def test_rate_limits_are_parsed_per_unit() -> None:
    limits = parse_rate_limits(
        [{"type": "requests", "unit": "rpm", "value": 10}, {"type": "tokens", "unit": "rpd", "value": 50_000}]
    )
    assert limits == (RateLimit(RateKind.REQUESTS, 60, 10), RateLimit(RateKind.TOKENS, 86_400, 50_000))
    assert limits[0].describe() == "10 requests per minute"
    assert parse_rate_limits({"type": "requests", "unit": "rph", "value": 0}) == (
        RateLimit(RateKind.REQUESTS, 3600, 0),
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([{"type": "requests", "unit": "rps", "value": 1}], r"rate_limits\[0\].unit: expected one of"),
        ([{"type": "calls", "unit": "rpm", "value": 1}], r"rate_limits\[0\].type: expected one of"),
        ([{"type": "requests", "unit": "rpm", "value": 1.5}], r"rate_limits\[0\].value: expected a whole"),
        ([{"type": "requests", "unit": "rpm"}], r"rate_limits\[0\].value: expected a number"),
    ],
)
def test_bad_rate_limits_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(LimitError, match=field):
        parse_rate_limits(value)


# -- periods ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reset", "key", "resets"),
    [
        (None, "all", None),
        (Reset.DAILY, "2026-11-26", datetime(2026, 11, 27, tzinfo=UTC)),
        (Reset.WEEKLY, "week-2026-11-22", datetime(2026, 11, 29, tzinfo=UTC)),  # Sunday to Sunday
        (Reset.MONTHLY, "2026-11", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_period_keys_and_reset_times(reset: Reset | None, key: str, resets: datetime | None) -> None:
    limit = BudgetLimit(BudgetKind.COST, 1, reset=reset)
    assert period_key(limit, NOW) == key
    assert reset_at(limit, NOW) == resets


def test_weeks_start_on_sunday_and_december_rolls_into_january() -> None:
    weekly = BudgetLimit(BudgetKind.COST, 1, reset=Reset.WEEKLY)
    sunday = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
    assert period_key(weekly, sunday) == "week-2026-11-29"
    assert period_key(weekly, datetime(2026, 11, 28, 23, 59, tzinfo=UTC)) == "week-2026-11-22"
    monthly = BudgetLimit(BudgetKind.COST, 1, reset=Reset.MONTHLY)
    assert reset_at(monthly, datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


# -- the ledger ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_store(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
def ledger(engine: AsyncEngine) -> BudgetLedger:
    return BudgetLedger(engine)


async def test_reserve_then_settle_charges_the_actual_amount(ledger: BudgetLedger) -> None:
    held = await ledger.reserve("vk:a", COST_5, 2_000_000, NOW)
    assert held == Reservation("vk:a", COST_5, "2026-11", 2_000_000)
    assert await ledger.usage("vk:a", COST_5, NOW) == (0, 2_000_000)
    await ledger.settle(held, 1_250_000)
    assert await ledger.usage("vk:a", COST_5, NOW) == (1_250_000, 0)


async def test_a_reservation_that_does_not_fit_is_refused_and_changes_nothing(ledger: BudgetLedger) -> None:
    assert await ledger.reserve("vk:a", COST_5, 4_000_000, NOW) is not None
    assert await ledger.reserve("vk:a", COST_5, 1_000_001, NOW) is None
    assert await ledger.reserve("vk:a", COST_5, 1_000_000, NOW) is not None
    assert await ledger.usage("vk:a", COST_5, NOW) == (0, 5_000_000)
    assert await ledger.reserve("vk:a", COST_5, 0, NOW) is None  # used up: even a free request
    assert await ledger.reserve("vk:b", COST_5, 5_000_001, NOW) is None  # the first of a period too
    assert await ledger.usage("vk:b", COST_5, NOW) == (0, 0)


async def test_actual_above_the_reservation_is_charged_and_unknown_charges_the_reservation(
    ledger: BudgetLedger,
) -> None:
    first = await ledger.reserve("ak:1", TOKENS_1000, 100, NOW)
    second = await ledger.reserve("ak:1", TOKENS_1000, 100, NOW)
    assert first is not None and second is not None
    await ledger.settle(first, 300)
    await ledger.settle(second, None)
    assert await ledger.usage("ak:1", TOKENS_1000, NOW) == (400, 0)


async def test_release_gives_the_reservation_back(ledger: BudgetLedger) -> None:
    held = await ledger.reserve("ak:1", TOKENS_1000, 1000, NOW)
    assert held is not None
    assert await ledger.reserve("ak:1", TOKENS_1000, 1, NOW) is None
    await ledger.release(held)
    assert await ledger.usage("ak:1", TOKENS_1000, NOW) == (0, 0)


async def test_a_new_period_starts_from_zero(ledger: BudgetLedger) -> None:
    held = await ledger.reserve("vk:a", COST_5, 5_000_000, NOW)
    assert held is not None
    await ledger.settle(held, 5_000_000)
    assert await ledger.reserve("vk:a", COST_5, 1, NOW) is None
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert await ledger.reserve("vk:a", COST_5, 5_000_000, december) is not None


async def test_cost_and_token_budgets_of_one_subject_are_separate_counters(ledger: BudgetLedger) -> None:
    assert await ledger.reserve("vk:a", TOKENS_1000, 1000, NOW) is not None
    assert await ledger.reserve("vk:a", COST_5, 5_000_000, NOW) is not None


async def test_several_budgets_are_reserved_all_or_nothing(ledger: BudgetLedger) -> None:
    small = BudgetLimit(BudgetKind.COST, 1_000_000)
    ok = Claim("ak:1", COST_5, 2_000_000)
    too_much = Claim("vk:a", small, 2_000_000)
    assert await ledger.reserve_all([ok, too_much], NOW) == too_much
    assert await ledger.usage("ak:1", COST_5, NOW) == (0, 0)
    reserved = await ledger.reserve_all([ok, Claim("vk:a", small, 1_000_000)], NOW)
    assert isinstance(reserved, list) and len(reserved) == 2
    assert await ledger.usage("ak:1", COST_5, NOW) == (0, 2_000_000)


async def test_crossing_the_alert_threshold_is_reported_once(
    ledger: BudgetLedger, caplog: pytest.LogCaptureFixture
) -> None:
    limit = BudgetLimit(BudgetKind.TOKENS, 1000, alert_at=500)
    flags = []
    for _ in range(4):
        held = await ledger.reserve("vk:a", limit, 200, NOW)
        assert held is not None
        with caplog.at_level(logging.WARNING, "wayport.security.budgets"):
            flags.append(await ledger.settle(held, 200))
    assert flags == [False, False, True, False]
    assert sum("alert threshold" in r.message for r in caplog.records) == 1


async def test_concurrent_reservations_never_overspend(ledger: BudgetLedger) -> None:
    # 200 requests at once, each wanting $0.10 of a $5.00 budget: exactly 50 fit
    limit = BudgetLimit(BudgetKind.COST, 5_000_000)
    results = await asyncio.gather(*(ledger.reserve("vk:hot", limit, 100_000, NOW) for _ in range(200)))
    assert sum(r is not None for r in results) == 50
    assert await ledger.usage("vk:hot", limit, NOW) == (0, 5_000_000)


async def test_two_nodes_on_one_postgresql_never_overspend(tmp_path: Path) -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    async with migrated_store("postgresql", tmp_path) as first:
        second = create_engine(
            PG_URL,
            tmp_path,
            connect_args={"server_settings": {"search_path": await _search_path(first)}},
        )
        try:
            nodes = [BudgetLedger(first), BudgetLedger(second)]
            limit = BudgetLimit(BudgetKind.TOKENS, 50 * 37)
            calls = [nodes[i % 2].reserve("ak:shared", limit, 37, NOW) for i in range(200)]
            results = await asyncio.gather(*calls)
            assert sum(r is not None for r in results) == 50
            assert sum(r is not None for r in results[0::2]) > 0
            assert sum(r is not None for r in results[1::2]) > 0
            assert await nodes[1].usage("ak:shared", limit, NOW) == (0, 50 * 37)
        finally:
            await second.dispose()


async def _search_path(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        path = (await connection.exec_driver_sql("SHOW search_path")).scalar_one()
    return str(path)
