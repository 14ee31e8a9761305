"""Circuit-breaker state shared by every gateway node through Redis.

Each target's state is one Redis hash; both operations are Lua scripts, so concurrent nodes never
read-then-write. Time comes from the Redis server, so nodes with skewed clocks agree.
"""

from __future__ import annotations

from typing import Any

from wayport.gateway.breaker import BreakerPolicy

KEY_PREFIX = "wayport:cb:"
# State is forgotten a day after its last change, so abandoned configs leave nothing behind.
TTL_S = 86_400

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

ALLOWED = (
    _NOW
    + """
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if not opened then return 1 end
if now - tonumber(opened) < tonumber(ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[1], 'probing') == '1' then return 0 end
redis.call('HSET', KEYS[1], 'probing', '1')
return 1
"""
)

RECORD = (
    _NOW
    + """
local cooldown, failed = tonumber(ARGV[1]), ARGV[2] == '1'
local threshold, pct, minimum = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local key = KEYS[1]
local opened = redis.call('HGET', key, 'opened_at')
if opened then
  if redis.call('HGET', key, 'probing') ~= '1' then return 0 end
  if failed then
    redis.call('HSET', key, 'opened_at', now, 'probing', '0')
  else
    redis.call('DEL', key)
    redis.call('HSET', key, 'window_start', now, 'total', 0, 'failures', 0)
  end
  redis.call('EXPIRE', key, ARGV[6])
  return 0
end
local start = tonumber(redis.call('HGET', key, 'window_start') or '0')
if now - start >= cooldown then
  redis.call('HSET', key, 'window_start', now, 'total', 0, 'failures', 0)
end
local total = redis.call('HINCRBY', key, 'total', 1)
local failures = tonumber(redis.call('HGET', key, 'failures') or '0')
if failed then failures = redis.call('HINCRBY', key, 'failures', 1) end
redis.call('EXPIRE', key, ARGV[6])
if total < minimum or failures == 0 then return 0 end
if (threshold >= 0 and failures >= threshold) or (pct >= 0 and failures * 100 >= pct * total) then
  redis.call('HSET', key, 'opened_at', now, 'probing', '0')
  return 1
end
return 0
"""
)


class RedisCircuitBreakers:
    """The ``Breakers`` of a cluster: state in Redis, the same semantics as ``CircuitBreakers``."""

    def __init__(self, redis: Any, prefix: str = KEY_PREFIX) -> None:
        self._prefix = prefix
        self._allowed = redis.register_script(ALLOWED)
        self._record = redis.register_script(RECORD)

    async def allowed(self, key: str, policy: BreakerPolicy) -> bool:
        return bool(await self._allowed(keys=[self._prefix + key], args=[policy.cooldown_s]))

    async def record(self, key: str, policy: BreakerPolicy, status: int) -> None:
        threshold = policy.failure_threshold if policy.failure_threshold is not None else -1
        pct = policy.failure_threshold_percentage if policy.failure_threshold_percentage is not None else -1
        args = [
            policy.cooldown_s,
            int(policy.is_failure(status)),
            threshold,
            pct,
            policy.minimum_requests,
            TTL_S,
        ]
        await self._record(keys=[self._prefix + key], args=args)
