"""Rate limits (requests or tokens per minute, hour, day or week), shared by every node through
Redis, or kept in the process without it.

The window is a true sliding window made of ``SLOTS`` sub-windows: a limit's count is kept per
slot of ``window_s / SLOTS`` seconds, and a request is admitted when the slots that overlap the
last ``window_s`` seconds — the oldest, partly expired one counted in full — leave room for it.
So no ``window_s``-long interval ever admits more than ``value``, and a block clears slot by slot
as the window moves forward (at most one slot, 1/60 of the window, later than an exact log
would). Memory stays at most ``SLOTS + 1`` counters per limit, whatever the traffic.

Why not the alternatives: a fixed window (LiteLLM's limiter, despite its "sliding" names) admits
twice the limit across a window boundary; two fixed windows weighted by overlap assume the
previous window's traffic was spread evenly and admit up to 1.5x after a burst; an exact log
keeps one entry per request, which a token limit of millions per day cannot afford.

Failure: :class:`RedisRateLimiter` raises when Redis does not answer; the usage gate then lets the
request through with a logged warning (rate limits fail open; budgets never do).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from wayport.security.limits import RateLimit

__all__ = ["KEY_PREFIX", "SLOTS", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]

SLOTS = 60
KEY_PREFIX = "wayport:rl:"


class RateLimiter(Protocol):
    """Where rate-limit counts live. ``key`` names the subject (``ak:<id>``); the limiter keeps
    one count per (key, kind, window), so a subject's limits never share a counter."""

    async def hit(
        self, key: str, limit: RateLimit, amount: int = 1, now: float | None = None
    ) -> float | None:
        """Count ``amount`` if it fits: ``None`` when admitted, else the seconds until it would.

        ``amount`` 0 (a token limit before the tokens are known) is admitted while the count is
        below the limit. ``now`` is epoch seconds (default: the clock of the store).
        """
        ...

    async def add(self, key: str, limit: RateLimit, amount: int, now: float | None = None) -> None:
        """Count ``amount`` unconditionally (tokens, once the response reports them)."""
        ...


def _slot_s(limit: RateLimit) -> float:
    return limit.window_s / SLOTS


def _counter_key(key: str, limit: RateLimit) -> str:
    return f"{key}:{limit.kind.value}:{limit.window_s}"


# KEYS[1] the counter hash (slot index -> count). ARGV: slot seconds, slots, limit, amount,
# mode ('hit' or 'add'), ttl seconds, now (epoch seconds, or '' for the Redis clock).
# Returns -1 when admitted, else the milliseconds until the amount would fit.
_SCRIPT = """
local key = KEYS[1]
local slot_s, slots, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local amount, mode, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local now = tonumber(ARGV[7])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local current = math.floor(now / slot_s)
if mode == 'add' then
  redis.call('HINCRBY', key, current, amount)
  redis.call('EXPIRE', key, ttl)
  return -1
end
local oldest = current - slots
local flat = redis.call('HGETALL', key)
local live, stale, used = {}, {}, 0
for i = 1, #flat, 2 do
  local slot, count = tonumber(flat[i]), tonumber(flat[i + 1])
  if slot < oldest then
    stale[#stale + 1] = flat[i]
  else
    used = used + count
    live[#live + 1] = {slot, count}
  end
end
if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
local need = math.max(amount, 1)
if used + need <= cap then
  if amount > 0 then
    redis.call('HINCRBY', key, current, amount)
    redis.call('EXPIRE', key, ttl)
  end
  return -1
end
local window_ms = math.ceil(slot_s * slots * 1000)
if need > cap then return window_ms end
table.sort(live, function(a, b) return a[1] < b[1] end)
local over = used + need - cap
for _, entry in ipairs(live) do
  over = over - entry[2]
  if over <= 0 then
    return math.max(1, math.ceil(((entry[1] + slots + 1) * slot_s - now) * 1000))
  end
end
return window_ms
"""


class RedisRateLimiter:
    """Counts in Redis, changed only by one Lua script, so nodes share them exactly.

    Time is the caller's ``now`` or, by default, the Redis server's clock, so nodes with skewed
    clocks still agree on the window. Keys expire one window after their last change.
    """

    def __init__(self, redis: Any, prefix: str = KEY_PREFIX) -> None:
        self._prefix = prefix
        self._script = redis.register_script(_SCRIPT)

    async def hit(
        self, key: str, limit: RateLimit, amount: int = 1, now: float | None = None
    ) -> float | None:
        wait_ms = await self._run(key, limit, amount, "hit", now)
        return None if wait_ms < 0 else wait_ms / 1000

    async def add(self, key: str, limit: RateLimit, amount: int, now: float | None = None) -> None:
        if amount > 0:
            await self._run(key, limit, amount, "add", now)

    async def _run(self, key: str, limit: RateLimit, amount: int, mode: str, now: float | None) -> int:
        slot_s = _slot_s(limit)
        args = [
            repr(slot_s),
            SLOTS,
            limit.value,
            amount,
            mode,
            math.ceil(limit.window_s + slot_s) + 1,
            "" if now is None else repr(now),
        ]
        result = await self._script(keys=[self._prefix + _counter_key(key, limit)], args=args)
        return int(result)


@dataclass(slots=True)
class _Counter:
    slot_s: float
    slots: dict[int, int] = field(default_factory=dict)
    last: int = 0


class MemoryRateLimiter:
    """Counts in this process: right for one process, wrong across workers or nodes (use Redis)."""

    # forget limits idle for a whole window, checked every this many calls
    _SWEEP_EVERY = 4096

    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}
        self._calls = 0

    async def hit(
        self, key: str, limit: RateLimit, amount: int = 1, now: float | None = None
    ) -> float | None:
        counter, current = self._counter(key, limit, now)
        oldest = current - SLOTS
        for stale in [slot for slot in counter.slots if slot < oldest]:
            del counter.slots[stale]
        used = sum(counter.slots.values())
        need = max(amount, 1)
        if used + need <= limit.value:
            if amount > 0:
                counter.slots[current] = counter.slots.get(current, 0) + amount
            return None
        if need > limit.value:
            return float(limit.window_s)
        over = used + need - limit.value
        moment = time.time() if now is None else now
        for slot in sorted(counter.slots):
            over -= counter.slots[slot]
            if over <= 0:
                return max(0.001, (slot + SLOTS + 1) * counter.slot_s - moment)
        return float(limit.window_s)

    async def add(self, key: str, limit: RateLimit, amount: int, now: float | None = None) -> None:
        if amount > 0:
            counter, current = self._counter(key, limit, now)
            counter.slots[current] = counter.slots.get(current, 0) + amount

    def _counter(self, key: str, limit: RateLimit, now: float | None) -> tuple[_Counter, int]:
        moment = time.time() if now is None else now
        self._calls += 1
        if self._calls % self._SWEEP_EVERY == 0:
            self._sweep(moment)
        name = _counter_key(key, limit)
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = _Counter(_slot_s(limit))
        current = math.floor(moment / counter.slot_s)
        counter.last = max(counter.last, current)
        return counter, current

    def _sweep(self, moment: float) -> None:
        idle = [
            name
            for name, counter in self._counters.items()
            if counter.last < math.floor(moment / counter.slot_s) - SLOTS
        ]
        for name in idle:
            del self._counters[name]
