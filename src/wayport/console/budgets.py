"""A budget as the keys page shows it: a bar of what is spent, in dollars or tokens."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from wayport.control.render import usd
from wayport.security.limits import BudgetKind, BudgetLimit


def budget_view(budget: BudgetLimit, used: int, reserved: int) -> dict[str, Any]:
    cost = budget.kind is BudgetKind.COST

    def text(amount: int) -> str:
        return f"${format((usd(amount) or Decimal(0)).normalize(), 'f')}" if cost else f"{amount:,} tokens"

    return {
        "label": f"{'cost' if cost else 'token'} budget",
        "limit": budget.limit,
        "used": min(used, budget.limit),
        "reserved": reserved,
        "alert_at": budget.alert_at,
        "percent": round(100 * used / budget.limit) if budget.limit else 100,
        "used_text": text(used),
        "limit_text": text(budget.limit),
        "reset": budget.reset.value if budget.reset is not None else None,
    }
