"""Budgets exact across any number of gateway nodes: counters in the store, changed only by
conditional UPDATEs.

A request *reserves* its worst-case amount before it is sent
(``UPDATE … SET reserved = reserved + :amount WHERE used + reserved + :amount <= :limit``); the
database decides, so two nodes can never both take the last dollar. When the answer arrives the
reservation is *settled*: the actual amount moves into ``used`` and the reservation is let go. An
unknown actual amount (stream cut, no usage) charges the whole reservation: uncertain usage is never
refunded.

One row per (scope, period): ``scope`` is ``<subject>:<kind>`` (``vk:abc:cost``), ``period`` names
the budget's current period — ``all`` (no reset), ``2026-11-26`` (daily), ``week-2026-11-22``
(weekly: weeks start on Sunday 00:00 UTC, as Portkey's do) or ``2026-11`` (monthly, from the 1st
00:00 UTC). A new period starts from zero because its row does not exist yet; old rows stay as
history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wayport.security.limits import BudgetLimit, Reset
from wayport.store.schema import BudgetCounterRow

__all__ = ["BudgetLedger", "Claim", "Reservation", "period_key", "reset_at"]

log = logging.getLogger(__name__)

_TABLE = cast(Table, BudgetCounterRow.__table__)
_C = _TABLE.c


def period_key(limit: BudgetLimit, now: datetime) -> str:
    """The name of the period ``now`` falls in."""
    now = now.astimezone(UTC)
    if limit.reset is None:
        return "all"
    if limit.reset is Reset.DAILY:
        return now.strftime("%Y-%m-%d")
    if limit.reset is Reset.WEEKLY:
        return "week-" + _week_start(now.date()).isoformat()
    return now.strftime("%Y-%m")


def reset_at(limit: BudgetLimit, now: datetime) -> datetime | None:
    """When the period ``now`` falls in ends (``None``: the budget never resets)."""
    today = now.astimezone(UTC).date()
    if limit.reset is None:
        return None
    if limit.reset is Reset.DAILY:
        start = today + timedelta(days=1)
    elif limit.reset is Reset.WEEKLY:
        start = _week_start(today) + timedelta(days=7)
    elif today.month == 12:
        start = date(today.year + 1, 1, 1)
    else:
        start = date(today.year, today.month + 1, 1)
    return datetime.combine(start, time(0), UTC)


def _week_start(day: date) -> date:
    # weekday(): Monday 0 ... Sunday 6
    return day - timedelta(days=(day.weekday() + 1) % 7)


@dataclass(frozen=True, slots=True)
class Claim:
    """``amount`` (micro-USD or tokens) wanted from ``scope``'s ``limit``."""

    scope: str
    limit: BudgetLimit
    amount: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """An amount held in one counter row until it is settled or released."""

    scope: str
    limit: BudgetLimit
    period: str
    amount: int

    @property
    def row_scope(self) -> str:
        return _row_scope(self.scope, self.limit)


def _row_scope(scope: str, limit: BudgetLimit) -> str:
    return f"{scope}:{limit.kind.value}"


class BudgetLedger:
    """Reserve, settle and read budget counters in the store (SQLite or PostgreSQL).

    Every change is one conditional statement; several reservations for one request happen in
    one transaction (rows locked in a fixed order, so concurrent requests never deadlock) and
    are all rolled back when one of them does not fit.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def reserve(
        self, scope: str, limit: BudgetLimit, amount: int, now: datetime | None = None
    ) -> Reservation | None:
        """Hold ``amount`` of ``limit`` for ``scope``; ``None`` when it does not fit."""
        reserved = await self.reserve_all([Claim(scope, limit, amount)], now)
        return reserved[0] if isinstance(reserved, list) else None

    async def reserve_all(
        self, claims: Sequence[Claim], now: datetime | None = None
    ) -> list[Reservation] | Claim:
        """All of ``claims`` or none: the reservations, or the first claim that did not fit."""
        now = now or datetime.now(UTC)
        wanted = sorted(
            (Reservation(c.scope, c.limit, period_key(c.limit, now), c.amount) for c in claims),
            key=lambda r: (r.row_scope, r.period),
        )
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin() as transaction:
                for reservation in wanted:
                    if not await self._hold(connection, reservation, now):
                        await transaction.rollback()
                        return next(
                            c for c in claims if c.scope == reservation.scope and c.limit == reservation.limit
                        )
        return wanted

    async def _hold(self, connection: AsyncConnection, r: Reservation, now: datetime) -> bool:
        # A used-up budget refuses even a request estimated at 0 (an unpriced model), as a
        # Portkey key "expires" once its budget is spent.
        need = max(r.amount, 1)
        where = (_C.scope == r.row_scope, _C.period == r.period)
        fits = update(_TABLE).where(*where, _C.used + _C.reserved + need <= r.limit.limit)
        fits = fits.values(reserved=_C.reserved + r.amount, updated_at=now)
        if (await connection.execute(fits)).rowcount == 1:
            return True
        if need > r.limit.limit:
            return False
        # First request of the period: create the row already holding the amount. If another
        # node created it meanwhile, nothing is inserted and the conditional UPDATE decides.
        create = self._insert(_TABLE).values(
            scope=r.row_scope, period=r.period, used=0, reserved=r.amount, updated_at=now
        )
        create = create.on_conflict_do_nothing(index_elements=["scope", "period"])
        if (await connection.execute(create)).rowcount == 1:
            return True
        return (await connection.execute(fits)).rowcount == 1

    async def settle(self, reservation: Reservation, actual: int | None) -> bool:
        """Charge ``actual`` (the whole reservation when ``None``) and let the reservation go.

        ``actual`` may exceed the reservation: it is charged in full. Returns ``True`` for the one
        settlement that takes ``used`` across the budget's ``alert_at`` (logged as a warning).
        """
        return (await self.settle_all([(reservation, actual)]))[0]

    async def settle_all(self, items: Sequence[tuple[Reservation, int | None]]) -> list[bool]:
        """:meth:`settle` for several reservations in one transaction."""
        now = datetime.now(UTC)
        crossed: list[bool] = []
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(sqlite_immediate=True)
            async with connection.begin():
                for reservation, actual in items:
                    charge = reservation.amount if actual is None else max(actual, 0)
                    used = await self._change(connection, reservation, charge, now)
                    crossed.append(_crossed(reservation, used, charge))
        return crossed

    async def release(self, reservation: Reservation) -> None:
        """Let a reservation go without charging it: the request never reached a provider."""
        await self.settle_all([(reservation, 0)])

    async def _change(
        self, connection: AsyncConnection, r: Reservation, charge: int, now: datetime
    ) -> int | None:
        statement = (
            update(_TABLE)
            .where(_C.scope == r.row_scope, _C.period == r.period)
            .values(used=_C.used + charge, reserved=_C.reserved - r.amount, updated_at=now)
            .returning(_C.used)
        )
        used: int | None = (await connection.execute(statement)).scalar_one_or_none()
        return used

    async def usage(self, scope: str, limit: BudgetLimit, now: datetime | None = None) -> tuple[int, int]:
        """``(used, reserved)`` of ``scope``'s ``limit`` in the period ``now`` falls in."""
        period = period_key(limit, now or datetime.now(UTC))
        query = select(_C.used, _C.reserved).where(_C.scope == _row_scope(scope, limit), _C.period == period)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))


def _crossed(reservation: Reservation, used: int | None, charge: int) -> bool:
    alert_at = reservation.limit.alert_at
    if used is None or alert_at is None or not used - charge < alert_at <= used:
        return False
    log.warning(
        "budget %s (%s, period %s) reached its alert threshold: %d of %d used",
        reservation.row_scope,
        reservation.limit.kind.value,
        reservation.period,
        used,
        reservation.limit.limit,
    )
    return True
