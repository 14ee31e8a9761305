"""Budgets and rate limits on the data plane: who a request is charged to, admit, settle.

Before each provider call (a cache hit is free and counts against nothing) the caller's API key
and the target's virtual key are admitted through the :class:`UsageGate`: rate limits counted,
the worst case reserved. When the answer has been sent, the reservation is settled with the real
usage and cost; an answer that failed is released (providers do not bill errors), a stream that
broke without usage is charged its reservation. Settling runs in tasks that shutdown waits for.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from wayport.gateway.context import RequestContext
from wayport.providers.base import Endpoint
from wayport.security.limits import LimitError, RateKind, RateLimit, parse_rate_limits, parse_usage_limits
from wayport.security.usage_gate import Admission, Subject, UsageGate

log = logging.getLogger("wayport.security")


class Enforcer:
    def __init__(self, gate: UsageGate) -> None:
        self.gate = gate
        # parsed limits of each key version: (kind, id, updated_at) -> subject (None: no limits)
        self._subjects: dict[tuple[str, str, Any], Subject | None] = {}
        self._settling: set[asyncio.Task[Any]] = set()

    def subject(self, kind: str, item: Any) -> Subject | None:
        """The subject of an API key (``ak``) or virtual key (``vk``); ``None`` when unlimited."""
        if item is None:
            return None
        cache_key = (kind, item.id, item.updated_at)
        if cache_key in self._subjects:
            return self._subjects[cache_key]
        label = f"API key '{item.name}'" if kind == "ak" else f"virtual key '{item.slug}'"
        try:
            budgets = parse_usage_limits(item.usage_limits)
            rates = parse_rate_limits(item.rate_limits)
        except LimitError as exc:
            # stored before validation existed, or edited by hand: refuse rather than not enforce
            log.error("the limits of %s cannot be read (%s); its requests are refused", label, exc)
            budgets, rates = (), (RateLimit(RateKind.REQUESTS, 60, 0),)
        found = Subject(f"{kind}:{item.id}", label, budgets, rates)
        subject = found if found.limited else None
        if len(self._subjects) > 10_000:
            self._subjects.clear()
        self._subjects[cache_key] = subject
        return subject

    async def admit(
        self, ctx: RequestContext, provider: str, params: dict[str, Any], endpoint: Endpoint
    ) -> None:
        """Admit the next provider call of ``ctx`` (releasing what an earlier target held)."""
        subjects = [
            s for s in (self.subject("ak", ctx.api_key), self.subject("vk", ctx.virtual_key)) if s is not None
        ]
        previous: Admission | None = ctx.admission
        if previous is not None:
            ctx.admission = None
            await self.gate.release(previous)
        if not subjects:
            return
        model = params.get("model")
        ctx.admission = await self.gate.admit(
            subjects,
            provider,
            model if isinstance(model, str) else None,
            params,
            expects_completion=endpoint is not Endpoint.EMBED,
        )

    def settle(self, ctx: RequestContext) -> None:
        """Settle what ``ctx`` holds, in the background (the answer has been sent)."""
        admission: Admission | None = ctx.admission
        if admission is None or admission.empty:
            return
        ctx.admission = None
        ok = ctx.status is not None and 200 <= ctx.status < 300
        cost = ctx.cost.micros if ctx.cost is not None else None
        work = self.gate.settle(admission, ctx.usage, cost) if ok else self.gate.release(admission)
        task = asyncio.ensure_future(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Wait for settlements in flight (shutdown)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
