"""The one check the data plane makes before and after a provider call: rate limits and budgets.

Before the call, :meth:`UsageGate.admit` counts the request against every rate limit of every
subject (the API key, the virtual key), then reserves the request's worst case against every
budget — all of them or none. After the call, :meth:`UsageGate.settle` charges what the provider
reported and adds the tokens to the token rate limits.

The worst case is conservative on purpose: prompt tokens are estimated as one per three characters
of the JSON text of the prompt fields (real tokenisers average about four), completion tokens as
``max_tokens`` (or the default when the request sets none), and the cost as those tokens at the
model's price. A model without a price costs 0, as in Portkey.

Failure modes: when Redis does not answer, rate limits are skipped with a logged warning (fail
open). When the store does not answer, the request is refused with 503 (budgets fail closed).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from wayport.errors import GatewayError
from wayport.observability.pricing import Pricer
from wayport.security.budgets import BudgetLedger, Claim, Reservation, reset_at
from wayport.security.limits import BudgetKind, BudgetLimit, RateKind, RateLimit, Reset
from wayport.security.ratelimit import RateLimiter

__all__ = [
    "Admission",
    "BudgetExhausted",
    "BudgetUnavailable",
    "Estimate",
    "RateLimited",
    "Subject",
    "UsageGate",
    "estimate",
]

log = logging.getLogger(__name__)

# request fields that become prompt tokens
_PROMPT_FIELDS = ("messages", "prompt", "input", "system", "tools", "functions")
_MAX_TOKEN_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_CHARS_PER_TOKEN = 3
_WARN_EVERY_S = 30.0


class RateLimited(GatewayError):
    """429: a rate limit is reached; ``retry_after`` seconds until the request would fit."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, headers=[(b"retry-after", str(self.retry_after).encode())])


class BudgetExhausted(GatewayError):
    """412: a budget cannot cover the request (Portkey's status for an exhausted budget)."""

    status = 412


class BudgetUnavailable(GatewayError):
    """503: the budget store did not answer; budgets never fail open."""

    status = 503


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a request is charged to: ``scope_prefix`` ``ak:<id>`` or ``vk:<id>``, ``label`` for
    messages (``API key 'ci'``)."""

    scope_prefix: str
    label: str
    budgets: tuple[BudgetLimit, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()

    @property
    def limited(self) -> bool:
        return bool(self.budgets or self.rate_limits)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The worst case of one request."""

    prompt_tokens: int
    completion_tokens: int
    cost_micros: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Admission:
    """What :meth:`UsageGate.admit` holds for a request until it is settled."""

    estimate: Estimate | None = None
    reservations: list[Reservation] = field(default_factory=list)
    token_limits: list[tuple[str, RateLimit]] = field(default_factory=list)
    done: bool = False

    @property
    def empty(self) -> bool:
        return not self.reservations and not self.token_limits


def estimate(
    pricer: Pricer,
    provider: str,
    model: str | None,
    body: Mapping[str, Any],
    default_max_tokens: int,
    *,
    expects_completion: bool = True,
) -> Estimate:
    """The worst case of ``body``: see the module docstring."""
    chars = sum(len(orjson.dumps(body[name])) for name in _PROMPT_FIELDS if body.get(name) is not None)
    prompt = math.ceil(chars / _CHARS_PER_TOKEN)
    completion = 0
    if expects_completion:
        completion = next(
            (v for name in _MAX_TOKEN_FIELDS if isinstance(v := body.get(name), int) and v >= 0),
            default_max_tokens,
        )
        choices = body.get("n")
        if isinstance(choices, int) and choices > 1:
            completion *= choices
    cost = None
    if model:
        cost = pricer.cost(provider, model, {"prompt_tokens": prompt, "completion_tokens": completion})
    return Estimate(prompt, completion, 0 if cost is None else cost.micros)


class UsageGate:
    """Rate limits and budgets of a request's subjects; see the module docstring."""

    def __init__(
        self,
        ledger: BudgetLedger,
        limiter: RateLimiter,
        pricer: Pricer,
        default_max_tokens: int = 4096,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._ledger = ledger
        self._limiter = limiter
        self._pricer = pricer
        self._default_max_tokens = default_max_tokens
        self._last_warning = -math.inf

    async def admit(
        self,
        subjects: Sequence[Subject],
        provider: str,
        model: str | None,
        body: Mapping[str, Any],
        *,
        expects_completion: bool = True,
    ) -> Admission:
        """Count the request and reserve its worst case, or raise :class:`RateLimited` (429),
        :class:`BudgetExhausted` (412) or :class:`BudgetUnavailable` (503).

        Subjects without limits cost nothing: no estimate, no store, no Redis.
        """
        limited = [subject for subject in subjects if subject.limited]
        if not limited:
            return Admission()
        admission = Admission()
        for subject in limited:
            for limit in subject.rate_limits:
                await self._check_rate(subject, limit)
                if limit.kind is RateKind.TOKENS:
                    admission.token_limits.append((subject.scope_prefix, limit))
        if admission.token_limits or any(subject.budgets for subject in limited):
            admission.estimate = estimate(
                self._pricer,
                provider,
                model,
                body,
                self._default_max_tokens,
                expects_completion=expects_completion,
            )
        claims = [
            Claim(subject.scope_prefix, budget, _amount(budget, admission.estimate))
            for subject in limited
            for budget in subject.budgets
        ]
        if claims:
            admission.reservations = await self._reserve(limited, claims)
        return admission

    async def settle(
        self, admission: Admission, usage: Mapping[str, Any] | None, cost_micros: int | None
    ) -> list[Reservation]:
        """Charge what the provider reported: ``usage`` (OpenAI-shaped) for token budgets and token
        rate limits, ``cost_micros`` for cost budgets. Either unknown (``None``) charges the
        reservation. Never raises (the response is already on its way): failures are logged.

        Returns the reservations whose budget crossed its alert threshold with this request.
        """
        if admission.done or admission.empty:
            return []
        admission.done = True
        tokens = _tokens(usage)
        crossed: list[Reservation] = []
        if admission.reservations:
            items = [
                (r, cost_micros if r.limit.kind is BudgetKind.COST else tokens)
                for r in admission.reservations
            ]
            try:
                flags = await self._ledger.settle_all(items)
            except Exception:
                log.exception("could not settle budget reservations %s", admission.reservations)
            else:
                crossed = [r for r, flag in zip(admission.reservations, flags, strict=True) if flag]
        if admission.token_limits:
            spent = tokens if tokens is not None else admission.estimate.tokens if admission.estimate else 0
            for key, limit in admission.token_limits:
                try:
                    await self._limiter.add(key, limit, spent)
                except Exception as exc:
                    self._warn("could not count tokens against rate limits: %r", exc)
        return crossed

    async def release(self, admission: Admission) -> None:
        """Give back what :meth:`admit` reserved for a request that never reached a provider."""
        done, admission.done = admission.done, True
        if done or not admission.reservations:
            return
        try:
            await self._ledger.settle_all([(r, 0) for r in admission.reservations])
        except Exception:
            log.exception("could not release budget reservations %s", admission.reservations)

    async def _check_rate(self, subject: Subject, limit: RateLimit) -> None:
        amount = 1 if limit.kind is RateKind.REQUESTS else 0
        try:
            wait = await self._limiter.hit(subject.scope_prefix, limit, amount)
        except Exception as exc:
            self._warn("rate limits are not enforced, the limiter failed: %r", exc)
            return
        if wait is None:
            return
        seconds = max(1, math.ceil(wait))
        if limit.value == 0:
            message = f"{subject.label}: {limit.kind.value} are not allowed (rate limit of 0)"
        else:
            message = f"{subject.label}: {limit.describe()}; retry in {seconds} s"
        raise RateLimited(message, seconds)

    async def _reserve(self, subjects: Sequence[Subject], claims: list[Claim]) -> list[Reservation]:
        now = self._clock()
        try:
            result = await self._ledger.reserve_all(claims, now)
            if isinstance(result, list):
                return result
            used, reserved = await self._ledger.usage(result.scope, result.limit, now)
        except Exception as exc:
            log.exception("budget store failed")
            raise BudgetUnavailable("budgets cannot be checked right now; try again shortly") from exc
        subject = next(s for s in subjects if s.scope_prefix == result.scope)
        raise BudgetExhausted(_exhausted_message(subject.label, result, used, reserved, now))

    def _warn(self, message: str, exc: BaseException) -> None:
        # once per interval: a Redis outage would otherwise log every request
        moment = time.monotonic()
        if moment - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = moment
            log.warning(message, exc)


def _amount(budget: BudgetLimit, worst: Estimate | None) -> int:
    if worst is None:
        return 0
    return worst.cost_micros if budget.kind is BudgetKind.COST else worst.tokens


def _tokens(usage: Mapping[str, Any] | None) -> int | None:
    if not usage:
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    parts = [
        usage.get(a, usage.get(b))
        for a, b in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens"))
    ]
    if not any(isinstance(part, int) for part in parts):
        return None
    return sum(part for part in parts if isinstance(part, int))


_PERIOD_WORDS = {Reset.DAILY: " per day", Reset.WEEKLY: " per week", Reset.MONTHLY: " per month"}


def _exhausted_message(label: str, claim: Claim, used: int, reserved: int, now: datetime) -> str:
    limit = claim.limit
    show = _usd if limit.kind is BudgetKind.COST else _token_count
    kind = "cost" if limit.kind is BudgetKind.COST else "token"
    what = f"{kind} budget of {show(limit.limit)}{_PERIOD_WORDS[limit.reset] if limit.reset else ''}"
    spent = f"{show(used)} {'spent' if limit.kind is BudgetKind.COST else 'used'}"
    if reserved:
        spent += f", {show(reserved)} held by requests in flight"
    if used + reserved >= limit.limit:
        state = f"is used up ({spent})"
    else:
        left = limit.limit - used - reserved
        state = f"has {show(left)} left ({spent}), less than this request may take ({show(claim.amount)})"
    when = reset_at(limit, now)
    tail = "it does not reset" if when is None else f"it resets at {when:%Y-%m-%d %H:%M} UTC"
    return f"{label}: {what} {state}; {tail}"


def _usd(amount_micros: int) -> str:
    dollars = Decimal(amount_micros) / 1_000_000
    cents = dollars.quantize(Decimal("0.01"))
    return f"${cents:,}" if cents == dollars else f"${dollars.normalize():,f}"


def _token_count(tokens: int) -> str:
    return f"{tokens:,} tokens"
