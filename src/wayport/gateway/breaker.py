"""Circuit breakers for the targets of a strategy (``strategy.cb_config``).

A target whose recent answers failed too often is *open*: the strategy skips it for
``cooldown_interval``. Then one request probes it (*half-open*): success closes the breaker,
failure opens it again. When every target of a strategy is open, all are tried anyway.

Failures are counted per window of ``cooldown_interval`` while closed; the breaker opens when
the failures reach ``failure_threshold``, or their share reaches ``failure_threshold_percentage``,
once at least ``minimum_requests`` answers were seen in the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MIN_COOLDOWN_MS = 30_000


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int | None
    failure_threshold_percentage: float | None
    cooldown_s: float
    # None: every status of 500 and above counts as a failure
    failure_status_codes: frozenset[int] | None
    minimum_requests: int

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], min_cooldown_ms: int = MIN_COOLDOWN_MS) -> BreakerPolicy:
        """Read a ``cb_config`` object; raises ``ValueError`` naming the bad field."""

        def number(name: str, kind: type[int] | type[float], low: float, high: float | None = None) -> Any:
            value = raw.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"cb_config.{name} must be a number")
            if value < low or (high is not None and value > high):
                bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
                raise ValueError(f"cb_config.{name} must be {bound}")
            return kind(value)

        threshold = number("failure_threshold", int, 1)
        percentage = number("failure_threshold_percentage", float, 0, 100)
        if threshold is None and percentage is None:
            raise ValueError("cb_config needs failure_threshold or failure_threshold_percentage")
        cooldown_ms = number("cooldown_interval", int, min_cooldown_ms)
        codes = raw.get("failure_status_codes")
        if codes is not None and (
            not isinstance(codes, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in codes)
        ):
            raise ValueError("cb_config.failure_status_codes must be a list of HTTP status codes")
        return cls(
            failure_threshold=threshold,
            failure_threshold_percentage=percentage,
            cooldown_s=(cooldown_ms if cooldown_ms is not None else min_cooldown_ms) / 1000,
            failure_status_codes=frozenset(codes) if codes is not None else None,
            minimum_requests=number("minimum_requests", int, 0) or 0,
        )

    def is_failure(self, status: int) -> bool:
        if self.failure_status_codes is not None:
            return status in self.failure_status_codes
        return status >= 500

    def trips(self, total: int, failures: int) -> bool:
        if total < self.minimum_requests or failures == 0:
            return False
        if self.failure_threshold is not None and failures >= self.failure_threshold:
            return True
        pct = self.failure_threshold_percentage
        return pct is not None and failures * 100 >= pct * total


class Breakers(Protocol):
    """Where breaker state lives: this process (``CircuitBreakers``) or Redis."""

    async def allowed(self, key: str, policy: BreakerPolicy) -> bool:
        """Whether a request may go to the target ``key`` now (claims the half-open probe)."""
        ...

    async def record(self, key: str, policy: BreakerPolicy, status: int) -> None:
        """Count the answer ``status`` of the target ``key``."""
        ...


@dataclass(slots=True)
class _State:
    window_start: float
    total: int = 0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitBreakers:
    """Breaker state of this process, keyed by strategy scope and target path.

    The methods are coroutines so that a shared implementation (``RedisCircuitBreakers``) can
    stand in for this one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}

    async def allowed(self, key: str, policy: BreakerPolicy) -> bool:
        state = self._states.get(key)
        if state is None or state.opened_at is None:
            return True
        if self._clock() - state.opened_at < policy.cooldown_s or state.probing:
            return False
        state.probing = True  # half-open: this request is the probe
        return True

    async def record(self, key: str, policy: BreakerPolicy, status: int) -> None:
        now = self._clock()
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(window_start=now)
        failed = policy.is_failure(status)
        if state.opened_at is not None:
            if not state.probing:
                return  # an answer that was in flight when the breaker opened
            state.probing = False
            if failed:
                state.opened_at = now
            else:
                self._states[key] = _State(window_start=now)
            return
        if now - state.window_start >= policy.cooldown_s:
            state.window_start, state.total, state.failures = now, 0, 0
        state.total += 1
        state.failures += failed
        if policy.trips(state.total, state.failures):
            state.opened_at = now
