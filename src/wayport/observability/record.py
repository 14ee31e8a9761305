"""The log record: everything Wayport keeps about one request, and how bodies enter it.

The gateway builds a :class:`LogRecord` after the response has gone to the client and hands it to
the :class:`~wayport.observability.writer.LogWriter`. Secrets are removed by :func:`scrub_record`
before a record is spooled or stored (the writer and the store both call it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from wayport.entropy import random_bytes
from wayport.observability.scrub import REDACTED, is_secret_key, scrub, scrub_text

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "REDACTED",
    "AttemptLike",
    "BodyLogMode",
    "LogRecord",
    "attempt_entries",
    "body_for_log",
    "is_secret_key",
    "new_log_id",
    "scrub",
    "scrub_record",
    "scrub_text",
]

DEFAULT_BODY_LIMIT = 64 * 1024


def new_log_id() -> str:
    """A UUIDv7 string: time-ordered (millisecond prefix), so ids sort roughly by creation."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(random_bytes(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # 62 bits rand_b
    return str(uuid.UUID(int=value))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True, kw_only=True)
class LogRecord:
    """One request as stored: ids, timing, tokens, cost, gateway state, metadata and bodies.

    Times are UTC; durations are milliseconds. ``prompt_tokens`` includes the cached-read and
    cache-write tokens; ``completion_tokens`` includes the reasoning tokens. ``cost_micros`` is
    integer micro-dollars, ``None`` when the model's price is unknown. ``user`` is the
    metadata's ``_user`` (filled from ``metadata`` when not given).
    """

    trace_id: str
    id: str = field(default_factory=new_log_id)
    span_id: str | None = None
    parent_span_id: str | None = None
    span_name: str | None = None
    created_at: datetime = field(default_factory=_utcnow)
    workspace_id: str | None = None
    api_key_id: str | None = None
    virtual_key: str | None = None
    provider: str | None = None
    model_requested: str | None = None
    model_served: str | None = None
    endpoint: str = "chatComplete"
    status: int = 200
    stream: bool = False
    latency_ms: int = 0
    ttft_ms: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int | None = None
    cost_breakdown: dict[str, int] = field(default_factory=dict)
    currency: str = "USD"
    cache_status: str = "DISABLED"
    # a semantic hit's cosine similarity, and what a cache hit saved (the answer's own cost)
    cache_similarity: float | None = None
    cost_saved_micros: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    fallbacks: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    request_body: str | None = None
    response_body: str | None = None
    error: str | None = None
    # set by scrub_record so that the writer and the store do not scrub the same record twice
    _scrubbed: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.user is None and self.metadata.get("_user") is not None:
            self.user = str(self.metadata["_user"])
        if self.created_at.tzinfo is None:
            raise ValueError("LogRecord.created_at must be timezone-aware (UTC)")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``created_at`` as ISO 8601), the shape of the spool and of exports."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        out["created_at"] = self.created_at.astimezone(UTC).isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogRecord:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {f.name for f in fields(cls) if f.init}
        values = {key: value for key, value in data.items() if key in known}
        created = values.get("created_at")
        if isinstance(created, str):
            values["created_at"] = datetime.fromisoformat(created)
        return cls(**values)


class AttemptLike(Protocol):
    """What :func:`attempt_entries` reads from an attempt (the gateway's ``Attempt``)."""

    @property
    def provider(self) -> str: ...
    @property
    def target_path(self) -> str: ...
    @property
    def started_ns(self) -> int: ...
    @property
    def ended_ns(self) -> int: ...
    @property
    def status(self) -> int | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def retry_index(self) -> int: ...


def attempt_entries(attempts: Iterable[AttemptLike]) -> list[dict[str, Any]]:
    """The ``attempts`` field of a record: one dict per upstream call, in order."""
    return [
        {
            "target_path": attempt.target_path,
            "provider": attempt.provider,
            "status": attempt.status,
            "latency_ms": _millis(attempt.ended_ns - attempt.started_ns) if attempt.ended_ns else None,
            "retry_index": attempt.retry_index,
            "error": attempt.error,
        }
        for attempt in attempts
    ]


def _millis(nanoseconds: int) -> int:
    return max(0, nanoseconds) // 1_000_000


def scrub_record(record: LogRecord) -> LogRecord:
    """Remove secrets from every free-form field of ``record``, in place; returns it.

    A record is scrubbed once; change it afterwards and secrets put in are not removed.
    """
    if record._scrubbed:
        return record
    if record.metadata:
        record.metadata = scrub(record.metadata)
    if record.attempts:
        record.attempts = scrub(record.attempts)
    if record.request_body:
        record.request_body = scrub_text(record.request_body)
    if record.response_body:
        record.response_body = scrub_text(record.response_body)
    if record.error:
        record.error = scrub_text(record.error)
    if record.span_name:
        record.span_name = scrub_text(record.span_name)
    record._scrubbed = True
    return record


class BodyLogMode(StrEnum):
    """How much of a request or response body a log keeps."""

    FULL = "full"
    TRUNCATED = "truncated"
    OFF = "off"


def body_for_log(
    body: bytes | str | None,
    mode: BodyLogMode | str = BodyLogMode.TRUNCATED,
    limit: int = DEFAULT_BODY_LIMIT,
) -> str | None:
    """The text of ``body`` as a log keeps it under ``mode``: all of it, its first ``limit``
    bytes followed by a ``…[truncated, N bytes]`` marker, or nothing.

    Bodies that are not UTF-8 text are logged as ``[binary body, N bytes]``. Secrets are removed
    later, by :func:`scrub_record`, off the request path.
    """
    mode = BodyLogMode(mode)
    if mode is BodyLogMode.OFF or body is None:
        return None
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    total = len(data)
    cut = mode is BodyLogMode.TRUNCATED and total > limit
    chunk = data[:limit] if cut else data
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut through a multi-byte character is not binary: drop the partial character.
        if not (cut and exc.start >= len(chunk) - 3 and exc.reason == "unexpected end of data"):
            return f"[binary body, {total} bytes]"
        text = chunk[: exc.start].decode("utf-8", "replace")
    if cut:
        text += f"…[truncated, {total} bytes]"
    return text
