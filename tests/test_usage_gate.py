"""The usage gate: estimates, 429 and 412 with their messages, settlement, and the free path for
subjects without limits (SQLite ledger in a temp dir, in-process rate limiter)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from wayport.gateway.reply import Reply
from wayport.observability.pricing import PriceOverride, Pricer
from wayport.security.budgets import BudgetLedger
from wayport.security.limits import BudgetKind, BudgetLimit, RateKind, RateLimit, Reset
from wayport.security.ratelimit import MemoryRateLimiter
from wayport.security.usage_gate import (
    Admission,
    BudgetExhausted,
    BudgetUnavailable,
    Estimate,
    RateLimited,
    Subject,
    UsageGate,
    estimate,
)
from wayport.store import create_engine, upgrade

NOW = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
# $1 per million input tokens, $2 per million output tokens: 1 and 2 micro-dollars per token
PRICER = Pricer({"acme/acme-1": PriceOverride.from_mapping({"input": 1, "output": 2})})
# 300 characters of content make 330 characters of JSON: 110 estimated prompt tokens
BODY = {"model": "acme-1", "messages": [{"role": "user", "content": "x" * 300}], "max_tokens": 100}
FIVE_A_MONTH = BudgetLimit(BudgetKind.COST, 5_000_000, reset=Reset.MONTHLY)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[BudgetLedger]:
    engine = create_engine(None, tmp_path)
    await upgrade(engine)
    yield BudgetLedger(engine)
    await engine.dispose()


@pytest.fixture
def gate(ledger: BudgetLedger) -> UsageGate:
    return UsageGate(ledger, MemoryRateLimiter(), PRICER, clock=lambda: NOW)


def key(*, budgets: tuple[BudgetLimit, ...] = (), rate_limits: tuple[RateLimit, ...] = ()) -> Subject:
    return Subject("ak:k1", "API key 'ci'", budgets, rate_limits)


def virtual_key(*, budgets: tuple[BudgetLimit, ...] = ()) -> Subject:
    return Subject("vk:v1", "virtual key 'openai-prod'", budgets)


async def spend(ledger: BudgetLedger, scope: str, limit: BudgetLimit, amount: int) -> None:
    held = await ledger.reserve(scope, limit, amount, NOW)
    assert held is not None
    await ledger.settle(held, amount)


# -- estimates ----------------------------------------------------------------------------------


def test_the_estimate_is_a_third_of_the_prompt_json_plus_max_tokens_at_the_model_price() -> None:
    assert estimate(PRICER, "acme", "acme-1", BODY, 4096) == Estimate(110, 100, 110 + 200)


def test_without_max_tokens_the_default_is_assumed_for_each_choice() -> None:
    body = {"prompt": "x" * 7, "n": 2}
    assert estimate(PRICER, "acme", "acme-1", body, 4096) == Estimate(3, 8192, 3 + 2 * 8192)
    assert estimate(PRICER, "acme", "acme-1", {"input": "x" * 7}, 4096, expects_completion=False).tokens == 3


def test_an_unpriced_model_costs_nothing_like_in_portkey() -> None:
    assert estimate(PRICER, "acme", "secret-model", BODY, 4096).cost_micros == 0
    assert estimate(PRICER, "acme", None, BODY, 4096).cost_micros == 0


# -- rate limits --------------------------------------------------------------------------------


async def test_a_rate_limited_request_gets_429_with_retry_after_naming_the_limit(gate: UsageGate) -> None:
    subject = key(rate_limits=(RateLimit(RateKind.REQUESTS, 60, 2),))
    await gate.admit([subject], "acme", "acme-1", BODY)
    await gate.admit([subject], "acme", "acme-1", BODY)
    with pytest.raises(RateLimited) as caught:
        await gate.admit([subject], "acme", "acme-1", BODY)
    error = caught.value
    assert error.status == 429 and 1 <= error.retry_after <= 61
    assert error.message == f"API key 'ci': 2 requests per minute; retry in {error.retry_after} s"
    reply = Reply.from_error(error)
    assert (b"retry-after", str(error.retry_after).encode()) in reply.headers
    assert orjson.loads(reply.body) == {"status": "failure", "message": error.message}


async def test_a_token_rate_limit_counts_the_reported_tokens_after_the_response(gate: UsageGate) -> None:
    subject = key(rate_limits=(RateLimit(RateKind.TOKENS, 3600, 1000),))
    admission = await gate.admit([subject], "acme", "acme-1", BODY)
    await gate.settle(admission, {"prompt_tokens": 600, "completion_tokens": 400, "total_tokens": 1000}, 1400)
    with pytest.raises(RateLimited, match="API key 'ci': 1,000 tokens per hour; retry in"):
        await gate.admit([subject], "acme", "acme-1", BODY)


async def test_rate_limits_fail_open_with_a_warning(
    ledger: BudgetLedger, caplog: pytest.LogCaptureFixture
) -> None:
    gate = UsageGate(ledger, Broken(), PRICER)
    subject = key(rate_limits=(RateLimit(RateKind.REQUESTS, 60, 1),))
    with caplog.at_level(logging.WARNING, "wayport.security.usage_gate"):
        for _ in range(3):
            await gate.admit([subject], "acme", "acme-1", BODY)
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # once, not per request


# -- budgets ------------------------------------------------------------------------------------


async def test_an_exhausted_budget_gets_412_naming_it_and_when_it_resets(
    gate: UsageGate, ledger: BudgetLedger
) -> None:
    await spend(ledger, "vk:v1", FIVE_A_MONTH, 5_000_000)
    with pytest.raises(BudgetExhausted) as caught:
        await gate.admit([key(), virtual_key(budgets=(FIVE_A_MONTH,))], "acme", "acme-1", BODY)
    assert caught.value.status == 412
    assert caught.value.message == (
        "virtual key 'openai-prod': cost budget of $5.00 per month is used up ($5.00 spent); "
        "it resets at 2026-12-01 00:00 UTC"
    )


async def test_a_used_up_budget_refuses_even_an_unpriced_model(gate: UsageGate, ledger: BudgetLedger) -> None:
    await spend(ledger, "ak:k1", FIVE_A_MONTH, 5_000_000)
    with pytest.raises(BudgetExhausted, match=r"is used up \(\$5.00 spent\)"):
        await gate.admit([key(budgets=(FIVE_A_MONTH,))], "acme", "secret-model", BODY)


async def test_an_unpriced_model_passes_a_budget_that_is_not_used_up(
    gate: UsageGate, ledger: BudgetLedger
) -> None:
    await spend(ledger, "ak:k1", FIVE_A_MONTH, 4_999_999)
    admission = await gate.admit([key(budgets=(FIVE_A_MONTH,))], "acme", "secret-model", BODY)
    assert [r.amount for r in admission.reservations] == [0]


async def test_a_request_bigger_than_what_is_left_is_refused_with_both_amounts(
    gate: UsageGate, ledger: BudgetLedger
) -> None:
    tokens = BudgetLimit(BudgetKind.TOKENS, 1000)
    await spend(ledger, "ak:k1", tokens, 900)
    with pytest.raises(BudgetExhausted) as caught:
        await gate.admit([key(budgets=(tokens,))], "acme", "acme-1", BODY)
    assert caught.value.message == (
        "API key 'ci': token budget of 1,000 tokens has 100 tokens left (900 tokens used), "
        "less than this request may take (210 tokens); it does not reset"
    )


async def test_budgets_of_the_api_key_and_the_virtual_key_are_reserved_all_or_nothing(
    gate: UsageGate, ledger: BudgetLedger
) -> None:
    await spend(ledger, "vk:v1", FIVE_A_MONTH, 4_999_900)
    subjects = [key(budgets=(FIVE_A_MONTH,)), virtual_key(budgets=(FIVE_A_MONTH,))]
    with pytest.raises(BudgetExhausted, match="virtual key 'openai-prod'"):
        await gate.admit(subjects, "acme", "acme-1", BODY)
    assert await ledger.usage("ak:k1", FIVE_A_MONTH, NOW) == (0, 0)


async def test_settle_charges_the_actual_cost_and_tokens(gate: UsageGate, ledger: BudgetLedger) -> None:
    tokens = BudgetLimit(BudgetKind.TOKENS, 100_000)
    admission = await gate.admit([key(budgets=(FIVE_A_MONTH, tokens))], "acme", "acme-1", BODY)
    assert await ledger.usage("ak:k1", FIVE_A_MONTH, NOW) == (0, 310)
    assert await ledger.usage("ak:k1", tokens, NOW) == (0, 210)
    await gate.settle(admission, {"prompt_tokens": 90, "completion_tokens": 12}, 114)
    await gate.settle(admission, {"prompt_tokens": 90, "completion_tokens": 12}, 114)  # once only
    assert await ledger.usage("ak:k1", FIVE_A_MONTH, NOW) == (114, 0)
    assert await ledger.usage("ak:k1", tokens, NOW) == (102, 0)


async def test_unknown_usage_charges_the_whole_reservation(gate: UsageGate, ledger: BudgetLedger) -> None:
    admission = await gate.admit([key(budgets=(FIVE_A_MONTH,))], "acme", "acme-1", BODY)
    await gate.settle(admission, None, None)
    assert await ledger.usage("ak:k1", FIVE_A_MONTH, NOW) == (310, 0)


async def test_release_gives_back_a_request_that_never_left(gate: UsageGate, ledger: BudgetLedger) -> None:
    admission = await gate.admit([key(budgets=(FIVE_A_MONTH,))], "acme", "acme-1", BODY)
    await gate.release(admission)
    assert await ledger.usage("ak:k1", FIVE_A_MONTH, NOW) == (0, 0)


async def test_settle_reports_the_budget_crossing_its_alert_threshold(gate: UsageGate) -> None:
    budget = BudgetLimit(BudgetKind.COST, 1000, alert_at=500)
    subject = key(budgets=(budget,))
    first = await gate.admit([subject], "acme", "acme-1", BODY)
    assert await gate.settle(first, {"total_tokens": 1}, 400) == []
    second = await gate.admit([subject], "acme", "acme-1", BODY)
    (crossed,) = await gate.settle(second, {"total_tokens": 1}, 200)
    assert crossed.scope == "ak:k1" and crossed.limit == budget


async def test_budgets_fail_closed_when_the_store_does_not_answer() -> None:
    gate = UsageGate(Broken(), MemoryRateLimiter(), PRICER)
    with pytest.raises(BudgetUnavailable) as caught:
        await gate.admit([key(budgets=(FIVE_A_MONTH,))], "acme", "acme-1", BODY)
    assert caught.value.status == 503


# -- the hot path -------------------------------------------------------------------------------


async def test_subjects_without_limits_touch_neither_the_store_nor_redis() -> None:
    gate = UsageGate(Untouchable(), Untouchable(), Untouchable())
    admission = await gate.admit([key(), virtual_key()], "acme", "acme-1", BODY)
    assert admission == Admission()
    assert await gate.settle(admission, {"total_tokens": 5}, 5) == []
    await gate.release(admission)


async def test_request_rate_limits_alone_need_no_estimate(ledger: BudgetLedger) -> None:
    gate = UsageGate(ledger, MemoryRateLimiter(), Untouchable())
    admission = await gate.admit([key(rate_limits=(RateLimit(RateKind.REQUESTS, 60, 5),))], "acme", "m", BODY)
    assert admission.empty and admission.estimate is None


class Untouchable:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call: {name}")


class Broken:
    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("nobody home")

        return fail
