"""``wayport logs tail``: follow new logs in the store and print them as table rows.

The store is polled with a look-back window: a log is written shortly after its request ends
(the writer flushes every 0.2 s), so each poll reads from ``grace`` before the newest log already
shown and skips ids it has printed. Only the ids inside that window are remembered.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rich.table import Table
from rich.text import Text

from wayport.control.errors import FieldError
from wayport.control.params import parse_time
from wayport.control.render import usd
from wayport.observability.record import LogRecord
from wayport.store.filters import LogFilters
from wayport.store.logs import MAX_PAGE_SIZE, LogRepository

__all__ = ["COLUMNS", "LogTail", "log_rows", "parse_moment"]

# (header, width, right-aligned)
COLUMNS = (
    ("time (UTC)", 23, False),
    ("trace id", 22, False),
    ("provider", 12, False),
    ("model", 26, False),
    ("status", 6, True),
    ("latency ms", 10, True),
    ("ttft ms", 7, True),
    ("tokens in/out", 13, True),
    ("cost USD", 10, True),
    ("cache", 12, False),
)
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1d`` (that long ago) or an ISO 8601 timestamp; ``ValueError`` otherwise."""
    match = _DURATION.match(text.strip().lower())
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        return parse_time("time", text)
    except FieldError:
        raise ValueError(
            f"{text!r} is neither a duration such as 10m, 2h, 1d nor an ISO 8601 timestamp"
        ) from None


class LogTail:
    """Logs that match ``filters``, created from ``since`` on, each returned once by :meth:`poll`."""

    def __init__(
        self,
        repo: LogRepository,
        since: datetime,
        filters: LogFilters | None = None,
        *,
        grace: timedelta = timedelta(seconds=10),
    ) -> None:
        self._repo = repo
        self._since = since
        self._filters = filters or LogFilters()
        self._grace = grace
        self._seen: dict[str, datetime] = {}
        self._newest: datetime | None = None

    async def poll(self) -> AsyncIterator[list[LogRecord]]:
        """The logs not returned before, oldest first, a page at a time."""
        start = self._since if self._newest is None else max(self._since, self._newest - self._grace)
        filters = replace(self._filters, since=start)
        cursor: str | None = None
        while True:
            page = await self._repo.query(filters, cursor, MAX_PAGE_SIZE, order="asc")
            fresh = [record for record in page.records if record.id not in self._seen]
            for record in fresh:
                self._seen[record.id] = record.created_at
                if self._newest is None or record.created_at > self._newest:
                    self._newest = record.created_at
            if fresh:
                yield fresh
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if self._newest is not None:
            horizon = self._newest - self._grace
            self._seen = {key: created for key, created in self._seen.items() if created >= horizon}


def log_rows(records: Sequence[LogRecord], *, header: bool = False) -> Table:
    """``records`` as rows of fixed-width columns, so that tables printed one after another line up."""
    table = Table(box=None, show_header=header, header_style="bold", pad_edge=False, show_edge=False)
    for name, width, right in COLUMNS:
        table.add_column(
            name, width=width, no_wrap=True, overflow="ellipsis", justify="right" if right else "left"
        )
    for record in records:
        cost = usd(record.cost_micros)
        table.add_row(
            record.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            record.trace_id,
            record.provider or "-",
            record.model_served or record.model_requested or "-",
            Text(str(record.status), style=_status_style(record.status)),
            str(record.latency_ms),
            "-" if record.ttft_ms is None else str(record.ttft_ms),
            f"{record.prompt_tokens}/{record.completion_tokens}",
            "-" if cost is None else format(cost, ".6f"),
            record.cache_status,
        )
    return table


def _status_style(status: int) -> str:
    if status >= 500:
        return "bold red"
    return "yellow" if status >= 400 else "green"
