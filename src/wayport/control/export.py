"""Log exports as JSONL or CSV, produced batch by batch (the API streams them, the CLI writes them).

Memory stays flat: the store hands over ``batch_size`` logs at a time and each batch becomes one
chunk of bytes before the next is read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from wayport.control.errors import render_json
from wayport.control.render import CSV_COLUMNS, log_to_json
from wayport.observability.record import LogRecord
from wayport.store.filters import LogFilters
from wayport.store.logs import LogRepository

__all__ = ["ExportChunk", "ExportFormat", "export_chunks", "write_export"]

EXPORT_BATCH_SIZE = 500


class ExportFormat(StrEnum):
    """The export file formats, with their media types."""

    JSONL = "jsonl"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        return "application/x-ndjson" if self is ExportFormat.JSONL else "text/csv; charset=utf-8"


ExportChunk = tuple[bytes, int]
"""Bytes to write and how many logs they hold (for a progress report)."""


async def export_chunks(
    repo: LogRepository,
    filters: LogFilters,
    fmt: ExportFormat,
    *,
    include_bodies: bool = True,
    batch_size: int = EXPORT_BATCH_SIZE,
) -> AsyncIterator[ExportChunk]:
    """The export of every log matching ``filters``, oldest first; a CSV starts with its header."""
    if fmt is ExportFormat.CSV:
        columns = [c for c in CSV_COLUMNS if include_bodies or c not in ("request_body", "response_body")]
        yield _csv_lines([columns]), 0
    batches = repo.export_batches(filters, batch_size=batch_size, include_bodies=include_bodies)
    async for batch in batches:
        if fmt is ExportFormat.JSONL:
            yield _jsonl(batch, include_bodies), len(batch)
        else:
            yield _csv_lines(_csv_row(record, columns) for record in batch), len(batch)


def _jsonl(batch: list[LogRecord], include_bodies: bool) -> bytes:
    return b"".join(
        render_json(log_to_json(record, include_bodies=include_bodies)) + b"\n" for record in batch
    )


def _csv_row(record: LogRecord, columns: list[str]) -> list[Any]:
    values = log_to_json(record)
    return [_csv_value(values[column]) for column in columns]


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value


def _csv_lines(rows: Any) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


async def write_export(
    repo: LogRepository,
    filters: LogFilters,
    fmt: ExportFormat,
    path: Path,
    *,
    include_bodies: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the export to ``path`` and return how many logs it holds. The file appears whole or
    not at all: it is written next to ``path`` and renamed when complete."""
    partial = path.with_name(path.name + ".partial")
    written = 0
    try:
        with partial.open("wb") as out:
            async for data, count in export_chunks(repo, filters, fmt, include_bodies=include_bodies):
                out.write(data)
                written += count
                if on_progress is not None and count:
                    on_progress(count)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written
