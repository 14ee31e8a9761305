"""Log filters: what the console, the logs API and the analytics API narrow a listing by."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

__all__ = ["LogFilters", "status_condition"]

StatusFilter = int | str | Sequence[int | str]
_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LogFilters:
    """Conditions a log must meet; all given conditions apply together.

    ``since`` is inclusive, ``until`` exclusive (both timezone-aware). ``metadata`` matches
    string values exactly (``_user`` uses its own indexed column, as does ``user``).
    ``provider``, ``model`` (requested or served) and ``cache_status`` take one value or several.
    ``status`` takes codes and classes: ``200``, ``"429"``, ``"4xx"`` or a list of them.
    Cost bounds are micro-dollars and exclude logs whose cost is unknown.
    """

    since: datetime | None = None
    until: datetime | None = None
    trace_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None
    provider: str | Sequence[str] | None = None
    model: str | Sequence[str] | None = None
    status: StatusFilter | None = None
    cache_status: str | Sequence[str] | None = None
    min_cost_micros: int | None = None
    max_cost_micros: int | None = None
    min_latency_ms: int | None = None
    max_latency_ms: int | None = None
    workspace_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"filter '{name}' must be timezone-aware")
        if self.status is not None:
            parse_status(self.status)

    def values(self, name: str) -> list[str]:
        """A one-or-many filter as a list (empty when not set)."""
        value = getattr(self, name)
        if value is None:
            return []
        return [value] if isinstance(value, str) else [str(item) for item in value]


def parse_status(status: StatusFilter) -> tuple[list[int], list[int]]:
    """Exact codes and classes (4 for ``4xx``); ``ValueError`` naming the bad value otherwise."""
    items: Sequence[int | str] = [status] if isinstance(status, int | str) else status
    codes: list[int] = []
    classes: list[int] = []
    for item in items:
        text = str(item).strip()
        if match := _STATUS_CLASS.match(text):
            classes.append(int(match.group(1)))
        elif text.isdigit() and 100 <= int(text) <= 599:
            codes.append(int(text))
        else:
            raise ValueError(f"invalid status filter {item!r}: use a code like 200 or a class like 4xx")
    return codes, classes


def status_condition(column: ColumnElement[int], status: StatusFilter) -> ColumnElement[bool]:
    codes, classes = parse_status(status)
    parts: list[ColumnElement[bool]] = []
    if codes:
        parts.append(column.in_(codes))
    parts.extend(and_(column >= cls * 100, column < (cls + 1) * 100) for cls in classes)
    return or_(*parts) if parts else false()
