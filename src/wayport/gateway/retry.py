"""Retries of one target (reference/portkey.md §7): ``attempts`` retries after the first call, on
the listed status codes and on network errors, with exponential backoff and jitter.

With ``use_retry_after_header(s)`` a 429's ``retry-after-ms`` / ``x-ms-retry-after-ms`` /
``retry-after`` decides the wait; a wait of 60 s or more (alone or in total) ends the retries.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from wayport.errors import ProviderError, UpstreamTimeout
from wayport.gateway.config import RetryPolicy
from wayport.gateway.context import RequestContext
from wayport.gateway.reply import Reply

RETRY_AFTER_CAP_MS = 60_000
EXHAUSTED = -1


class RetryRunner:
    def __init__(
        self,
        base_delay_s: float = 1.0,
        max_delay_s: float = 16.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    def backoff(self, retry: int) -> float:
        """Delay before retry ``retry`` (0-based): base·2ⁿ, capped, scaled by a random 50–100 %."""
        delay: float = min(self.max_delay_s, self.base_delay_s * 2.0**retry)
        return delay * (0.5 + self._rng.random() / 2)

    async def run(
        self, ctx: RequestContext, policy: RetryPolicy | None, attempt: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        ctx.retry_count = 0
        if policy is None or policy.attempts == 0:
            return await attempt()
        waited_ms = 0.0
        for n in range(policy.attempts + 1):
            ctx.retry_count = n
            last = n == policy.attempts
            try:
                reply = await attempt()
            except UpstreamTimeout:
                if last or 408 not in policy.on_status_codes:
                    raise
                reply = None
            except ProviderError:
                if last:
                    ctx.retry_count = EXHAUSTED
                    raise
                reply = None
            if reply is not None:
                if reply.status not in policy.on_status_codes:
                    return reply
                if last:
                    ctx.retry_count = EXHAUSTED
                    return reply
            delay_ms = self.backoff(n) * 1000
            if reply is not None and policy.use_retry_after and reply.status == 429:
                hinted = retry_after_ms(reply.headers)
                if hinted is not None:
                    if hinted >= RETRY_AFTER_CAP_MS or waited_ms + hinted > RETRY_AFTER_CAP_MS:
                        ctx.retry_count = EXHAUSTED
                        return reply
                    delay_ms = hinted
            if reply is not None:
                await reply.discard()
            waited_ms += delay_ms
            await self._sleep(delay_ms / 1000)
        raise AssertionError("unreachable: the last attempt returns or raises")


def retry_after_ms(headers: list[tuple[bytes, bytes]]) -> float | None:
    values = dict(headers)
    for name, scale in ((b"retry-after-ms", 1.0), (b"x-ms-retry-after-ms", 1.0), (b"retry-after", 1000.0)):
        raw = values.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            continue  # an HTTP-date: not supported, as in Portkey; fall back to backoff
        if value >= 0:
            return value
    return None
