"""The background log writer: a bounded queue drained in batches, off the request path.

``submit`` is the only call a request makes: an append to an in-memory queue that never blocks,
never raises and never awaits. When the queue is full (the store is slower than the traffic),
records overflow to the spool file instead, written by a task of their own; only a full overflow
as well (or no spool) drops a record, counted and logged. One background task takes batches off
the queue and hands them to the sink (the store). When the sink fails, the batch goes to the
JSONL spool file and is retried later, and at the next start-up; ``close`` flushes what is
queued (lifespan shutdown, SIGTERM).

What a crash (SIGKILL, power loss) can lose: the records still in memory — normally those submitted
during the last flush interval (0.2 s) plus the batch being written; up to ``queue_size`` records
when the store has been slower than the traffic. Spooled records survive; replaying them is
idempotent because the store skips log ids it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import orjson

from wayport.observability.record import LogRecord, scrub_record

__all__ = ["LogWriter", "Sink"]

Sink = Callable[[list[LogRecord]], Awaitable[None]]

logger = logging.getLogger("wayport.logs")

# Scrubbing is CPU work on the event loop: it hands the loop back to requests after this long,
# or after the long slice while more than a batch waits (a saturated gateway must not starve its
# writer, or its queue fills and overflows to the spool).
_SCRUB_SLICE_S = 0.0005
_BACKLOG_SLICE_S = 0.01
_BACKLOG_BATCHES = 4


class LogWriter:
    """Batches log records into ``sink`` (e.g. ``LogRepository.insert_many``) in the background.

    Counters, for the metrics module: ``submitted`` (accepted by ``submit``), ``dropped`` (refused
    because the queue and its overflow were full, or the writer closed), ``written`` (accepted by
    the sink, replays included), ``spooled`` (written to the spool file after a sink failure or
    from the overflow), ``replayed`` (read back from the spool and written), ``failures`` (failed
    sink calls), ``lost`` (records that could not be written nor spooled: no spool, spool full, or
    rejected by the store one by one). ``queued`` is the number of records in memory.
    """

    def __init__(
        self,
        sink: Sink,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        spool_path: Path | None = None,
        *,
        retry_interval_s: float = 5.0,
        spool_max_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval_s <= 0:
            raise ValueError("queue_size and batch_size must be positive, flush_interval_s above zero")
        self.submitted = 0
        self.written = 0
        self.dropped = 0
        self.spooled = 0
        self.replayed = 0
        self.failures = 0
        self.lost = 0
        self._sink = sink
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval_s
        self._spool_path = spool_path
        self._retry_interval = retry_interval_s
        self._spool_max_bytes = spool_max_bytes
        self._queue: deque[LogRecord] = deque()
        self._current: list[LogRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._spool_pending = False
        self._next_replay = 0.0
        # records the full queue could not take, on their way to the spool
        self._overflow: list[LogRecord] = []
        self._overflow_task: asyncio.Task[None] | None = None
        # the spool file is appended to by two tasks and moved aside by the replay
        self._spool_lock = asyncio.Lock()

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._current) + len(self._overflow)

    @property
    def spool_pending(self) -> bool:
        """True while spooled records wait to be replayed."""
        return self._spool_pending

    async def start(self) -> None:
        """Start the background task; it first replays what an earlier run spooled."""
        if self._task is not None or self._closed:
            return
        if self._spool_path is not None:
            self._spool_pending = await asyncio.to_thread(self._spool_exists)
        self._task = asyncio.create_task(self._run(), name="wayport-log-writer")

    def submit(self, record: LogRecord) -> bool:
        """Queue ``record`` for writing, or for the spool when the queue is full; ``False`` (and
        counted in ``dropped``) when the overflow is full too, there is no spool, or the writer is
        closing. Never blocks, never raises."""
        try:
            if self._closing:
                return self._drop()
            if len(self._queue) < self._queue_size:
                self._queue.append(record)
                if len(self._queue) >= self._batch_size:
                    self._wake.set()
            elif self._spool_path is not None and len(self._overflow) < self._queue_size:
                self._overflow.append(record)
                if self._overflow_task is None:
                    self._overflow_task = asyncio.create_task(self._spool_overflow())
            else:
                return self._drop()
            self.submitted += 1
            return True
        except Exception:  # pragma: no cover - a logging failure must never fail a request
            return self._drop()

    def _drop(self) -> bool:
        if not self.dropped:
            logger.error("a request log was dropped (queue and spool overflow full, or the writer closed)")
        self.dropped += 1
        return False

    async def close(self, timeout_s: float | None = 10.0) -> None:
        """Stop accepting records and write out the queue. After ``timeout_s`` (a store that
        hangs) whatever is still in memory goes to the spool instead."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            if task is None:
                await asyncio.wait_for(self._drain(), timeout_s)
            else:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            leftover = self._current + list(self._queue)
            self._current = []
            self._queue.clear()
            if leftover:
                await self._spool(leftover)
        finally:
            if self._overflow_task is not None:
                await self._overflow_task
            self._closed = True

    async def _run(self) -> None:
        if self._spool_pending:
            await self._guarded(self._replay())
        while True:
            await self._wait_for_batch()
            await self._guarded(self._drain())
            if self._closing and not self._queue:
                return
            if self._spool_pending and not self._closing and time.monotonic() >= self._next_replay:
                await self._guarded(self._replay())

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the writer alive whatever a bug throws
            logger.exception("log writer error")

    async def _wait_for_batch(self) -> None:
        self._wake.clear()
        if self._closing or len(self._queue) >= self._batch_size:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._flush_interval)

    async def _drain(self) -> None:
        while self._queue:
            count = min(self._batch_limit(), len(self._queue))
            self._current = [self._queue.popleft() for _ in range(count)]
            # no try/finally: when close() cancels a hung write, it spools what is left in _current
            if await self._write(self._current):
                self.written += count
            else:
                await self._spool(self._current)
            self._current = []

    async def _scrub(self, batch: list[LogRecord]) -> None:
        """Scrub ``batch`` in slices of event-loop time (secrets never reach the store or disk)."""
        slice_end = time.perf_counter() + self._slice_s()
        for record in batch:
            scrub_record(record)
            if time.perf_counter() >= slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + self._slice_s()

    async def _write(self, batch: list[LogRecord]) -> bool:
        try:
            await self._scrub(batch)
            await self._sink(batch)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            logger.warning("log sink failed for %d records: %s", len(batch), exc)
            return False

    def _slice_s(self) -> float:
        return _BACKLOG_SLICE_S if len(self._queue) >= self._batch_size else _SCRUB_SLICE_S

    def _batch_limit(self) -> int:
        # A write costs a few round trips to the store, each a turn of a busy event loop: while a
        # backlog builds up, bigger batches spread those turns over more records.
        backlog = len(self._queue) >= _BACKLOG_BATCHES * self._batch_size
        return self._batch_size * _BACKLOG_BATCHES if backlog else self._batch_size

    # -- the spool ---------------------------------------------------------------------------

    @property
    def _replay_path(self) -> Path:
        assert self._spool_path is not None
        return self._spool_path.with_name(self._spool_path.name + ".replay")

    def _spool_exists(self) -> bool:
        assert self._spool_path is not None
        paths = (self._spool_path, self._replay_path)
        return any(path.exists() and path.stat().st_size > 0 for path in paths)

    async def _spool_overflow(self) -> None:
        try:
            while self._overflow:
                batch, self._overflow = self._overflow, []
                await self._spool(batch)
        finally:
            self._overflow_task = None

    async def _spool(self, batch: list[LogRecord]) -> None:
        if self._spool_path is None:
            self.lost += len(batch)
            return
        await self._scrub(batch)
        lines = b"".join(_spool_line(record) for record in batch)
        try:
            async with self._spool_lock:
                written = await asyncio.to_thread(_append, self._spool_path, lines, self._spool_max_bytes)
        except OSError as exc:
            logger.error("log spool %s not writable: %s", self._spool_path, exc)
            written = False
        if not written:
            self.lost += len(batch)
            return
        self.spooled += len(batch)
        if not self._spool_pending:
            self._next_replay = time.monotonic() + self._retry_interval
        self._spool_pending = True

    async def _replay(self) -> None:
        """Write spooled records back through the sink, a batch at a time. The spool is moved aside
        first so that new failures start a fresh file; whatever cannot be written goes back."""
        assert self._spool_path is not None
        self._next_replay = time.monotonic() + self._retry_interval
        replay = self._replay_path
        # an earlier run may have died mid-replay: finish that file before claiming a new one
        if not await asyncio.to_thread(replay.exists):
            async with self._spool_lock:  # no append may land in the file once it is moved
                if not await asyncio.to_thread(self._spool_path.exists):
                    self._spool_pending = False
                    return
                await asyncio.to_thread(os.replace, self._spool_path, replay)
        reader = await asyncio.to_thread(open, replay, "rb")
        try:
            while True:
                lines: list[bytes] = await asyncio.to_thread(_read_lines, reader, self._batch_size)
                if not lines:
                    break
                batch = self._parse(lines)
                if self._closing or (batch and not await self._write_replayed(batch)):
                    # the store is still down, or we are shutting down: keep the rest for later
                    rest = b"".join(lines) + await asyncio.to_thread(reader.read)
                    async with self._spool_lock:
                        await asyncio.to_thread(_append, self._spool_path, rest, None)
                    break
                # live traffic keeps flowing while a long spool replays
                if len(self._queue) >= self._batch_size:
                    await self._drain()
        finally:
            await asyncio.to_thread(reader.close)
        await asyncio.to_thread(replay.unlink, True)
        self._spool_pending = await asyncio.to_thread(self._spool_exists)

    def _parse(self, lines: list[bytes]) -> list[LogRecord]:
        batch: list[LogRecord] = []
        for line in lines:
            try:
                batch.append(LogRecord.from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                self.lost += 1  # a torn last line after a crash
        return batch

    async def _write_replayed(self, batch: list[LogRecord]) -> bool:
        """Write a spooled batch; ``False`` when the store still looks unavailable.

        A batch can also fail because one record is bad (the store rejects it). When the first or
        the last record goes in alone, the store is up: the rest go one by one and the records it
        still refuses are dropped (counted in ``lost``) instead of blocking the spool forever.
        """
        if await self._write(batch):
            self._count_replayed(len(batch))
            return True
        if len(batch) == 1:
            return False
        first_ok = await self._write(batch[:1])
        last_ok = await self._write(batch[-1:])
        if not first_ok and not last_ok:
            return False
        rejected = int(not first_ok) + int(not last_ok)
        self._count_replayed(int(first_ok) + int(last_ok))
        for record in batch[1:-1]:
            if await self._write([record]):
                self._count_replayed(1)
            else:
                rejected += 1
        self.lost += rejected
        logger.error("log store rejected %d spooled records; they are dropped", rejected)
        return True

    def _count_replayed(self, count: int) -> None:
        self.written += count
        self.replayed += count


def _spool_line(record: LogRecord) -> bytes:
    return orjson.dumps(record.to_dict(), default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def _append(path: Path, data: bytes, limit: int | None) -> bool:
    """Append ``data`` to ``path`` (created 0600); ``False`` when it would grow past ``limit``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if limit is not None and os.fstat(fd).st_size + len(data) > limit:
            return False
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return True
    finally:
        os.close(fd)


def _read_lines(reader: IO[bytes], count: int) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(count):
        line = reader.readline()
        if not line:
            break
        if line.strip():
            lines.append(line)
    return lines
