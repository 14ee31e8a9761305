"""Budget and rate-limit settings in Portkey's shapes, parsed once into frozen values.

``usage_limits`` (one object, or a list for a cost *and* a token budget)::

    {"credit_limit": 5, "type": "cost", "alert_threshold": 4, "periodic_reset": "monthly"}

``rate_limits`` (a list, or one object)::

    [{"type": "requests", "unit": "rpm", "value": 10}]

Money never passes through a float: every number is read as ``Decimal(str(x))`` and a cost budget
is held in integer micro-dollars. A token budget counts input plus output tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from wayport.observability.pricing import micros

__all__ = [
    "BudgetKind",
    "BudgetLimit",
    "LimitError",
    "RateKind",
    "RateLimit",
    "Reset",
    "parse_rate_limits",
    "parse_usage_limits",
]


class LimitError(ValueError):
    """A ``usage_limits`` or ``rate_limits`` value does not validate; the message names the field."""


class BudgetKind(StrEnum):
    COST = "cost"
    TOKENS = "tokens"


class Reset(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class RateKind(StrEnum):
    REQUESTS = "requests"
    TOKENS = "tokens"


_E = TypeVar("_E", bound=StrEnum)

UNITS: Mapping[str, int] = {"rpm": 60, "rph": 3600, "rpd": 86_400, "rpw": 604_800}
UNIT_NAMES: Mapping[int, str] = {60: "minute", 3600: "hour", 86_400: "day", 604_800: "week"}


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """A spending cap: ``limit`` and ``alert_at`` are micro-USD for cost, tokens for tokens.

    ``reset`` ``None`` means the budget never resets.
    """

    kind: BudgetKind
    limit: int
    alert_at: int | None = None
    reset: Reset | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``value`` requests (or tokens) in any ``window_s`` seconds; ``0`` blocks everything."""

    kind: RateKind
    window_s: int
    value: int

    def describe(self) -> str:
        """``10 requests per minute``."""
        per = UNIT_NAMES.get(self.window_s, f"{self.window_s} s")
        return f"{self.value:,} {self.kind.value} per {per}"


def parse_usage_limits(value: Any) -> tuple[BudgetLimit, ...]:
    """``usage_limits`` (``None``, one object or a list of objects) as budgets."""
    return _parse_all(value, "usage_limits", _budget, lambda b: (b.kind, b.reset), "budget", "periodic_reset")


def parse_rate_limits(value: Any) -> tuple[RateLimit, ...]:
    """``rate_limits`` (``None``, one object or a list of objects) as rate limits."""
    return _parse_all(value, "rate_limits", _rate, lambda r: (r.kind, r.window_s), "limit", "unit")


_L = TypeVar("_L", BudgetLimit, RateLimit)


def _parse_all(
    value: Any,
    field: str,
    parse: Callable[[Any, str], _L],
    identity: Callable[[_L], object],
    noun: str,
    axis: str,
) -> tuple[_L, ...]:
    """Each item of ``value`` parsed; two items of the same kind on the same ``axis`` are refused."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    parsed: list[_L] = []
    for index, item in enumerate(items):
        where = field if not isinstance(value, list) else f"{field}[{index}]"
        limit = parse(item, where)
        if any(identity(other) == identity(limit) for other in parsed):
            raise LimitError(f"{where}: a second {limit.kind.value} {noun} with the same {axis}")
        parsed.append(limit)
    return tuple(parsed)


def _budget(item: Any, where: str) -> BudgetLimit:
    if not isinstance(item, Mapping):
        raise LimitError(f"{where}: expected an object")
    kind = _choice(item.get("type", "cost"), BudgetKind, f"{where}.type")
    limit = _amount(item.get("credit_limit"), kind, f"{where}.credit_limit", required=True)
    assert limit is not None
    alert_at = _amount(item.get("alert_threshold"), kind, f"{where}.alert_threshold", required=False)
    if alert_at is not None and alert_at > limit:
        raise LimitError(f"{where}.alert_threshold: must not exceed credit_limit")
    raw_reset = item.get("periodic_reset")
    reset = None if raw_reset is None else _choice(raw_reset, Reset, f"{where}.periodic_reset")
    return BudgetLimit(kind, limit, alert_at, reset)


def _rate(item: Any, where: str) -> RateLimit:
    if not isinstance(item, Mapping):
        raise LimitError(f"{where}: expected an object")
    kind = _choice(item.get("type", "requests"), RateKind, f"{where}.type")
    unit = item.get("unit")
    if not isinstance(unit, str) or unit not in UNITS:
        raise LimitError(f"{where}.unit: expected one of {', '.join(UNITS)}, got {unit!r}")
    number = _decimal(item.get("value"), f"{where}.value")
    if number != number.to_integral_value() or number < 0:
        raise LimitError(f"{where}.value: expected a whole number >= 0")
    return RateLimit(kind, UNITS[unit], int(number))


def _choice(raw: Any, enum: type[_E], where: str) -> _E:
    try:
        return enum(raw)
    except ValueError:
        choices = ", ".join(f'"{member.value}"' for member in enum)
        raise LimitError(f"{where}: expected one of {choices}, got {raw!r}") from None


def _amount(raw: Any, kind: BudgetKind, where: str, *, required: bool) -> int | None:
    if raw is None:
        if required:
            raise LimitError(f"{where}: required")
        return None
    number = _decimal(raw, where)
    if number < 0:
        raise LimitError(f"{where}: must be >= 0")
    if kind is BudgetKind.COST:
        return micros(number)
    if number != number.to_integral_value():
        raise LimitError(f"{where}: a token count must be a whole number")
    return int(number)


def _decimal(raw: Any, where: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
        raise LimitError(f"{where}: expected a number, got {raw!r}")
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        raise LimitError(f"{where}: expected a number, got {raw!r}") from None
    if not number.is_finite():
        raise LimitError(f"{where}: expected a finite number")
    return number
