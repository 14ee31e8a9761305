"""The background log writer: bounded queue, batching, flush on close, spool and replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayport.gateway.context import Attempt
from wayport.observability import writer as writer_module
from wayport.observability.record import (
    BodyLogMode,
    LogRecord,
    attempt_entries,
    body_for_log,
    scrub,
    scrub_record,
)
from wayport.observability.scrub import (
    _BARE_KEY,
    _TOKEN_VALUE,
    _redact_json,
    _redact_pairs,
    _redact_token,
    scrub_text,
)
from wayport.observability.writer import LogWriter
from wayport.store import LogRepository, create_engine, upgrade


class RecordingSink:
    """A sink that keeps what it is given, and fails while ``failing`` says so."""

    def __init__(self, failing: Callable[[list[LogRecord]], bool] = lambda batch: False) -> None:
        self.batches: list[list[LogRecord]] = []
        self.failing = failing
        self.calls = 0

    async def __call__(self, batch: list[LogRecord]) -> None:
        self.calls += 1
        if self.failing(batch):
            raise ConnectionError("database is down")
        self.batches.append(list(batch))

    @property
    def ids(self) -> list[str]:
        return [record.id for batch in self.batches for record in batch]


def records(count: int, **fields: Any) -> list[LogRecord]:
    return [LogRecord(trace_id=f"trace-{n}", **fields) for n in range(count)]


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_without_a_spool_a_burst_larger_than_the_queue_counts_exactly_what_it_drops() -> None:
    sink = RecordingSink()
    writer = LogWriter(sink, queue_size=100, batch_size=10)
    await writer.start()
    burst = records(250)
    accepted = [writer.submit(record) for record in burst]  # no await: the drainer cannot run
    assert accepted.count(True) == 100 and accepted.count(False) == 150
    assert (writer.submitted, writer.dropped, writer.queued) == (100, 150, 100)
    await writer.close()
    assert writer.written == 100
    assert sink.ids == [record.id for record in burst[:100]]


async def test_a_burst_larger_than_the_queue_overflows_to_the_spool(tmp_path: Path) -> None:
    sink = RecordingSink()
    spool = tmp_path / "spool" / "logs.jsonl"
    writer = LogWriter(
        sink, queue_size=100, batch_size=10, flush_interval_s=0.01, spool_path=spool, retry_interval_s=0.05
    )
    await writer.start()
    burst = records(250)
    accepted = [writer.submit(record) for record in burst]  # no await: the drainer cannot run
    # 100 in the queue and as many again in the overflow; only then are records dropped
    assert accepted == [True] * 200 + [False] * 50
    assert (writer.submitted, writer.dropped, writer.queued) == (200, 50, 200)
    await eventually(lambda: writer.written == 200)
    assert sorted(sink.ids) == sorted(record.id for record in burst[:200])
    assert (writer.spooled, writer.replayed, writer.lost) == (100, 100, 0)
    await writer.close()


async def test_the_overflow_reaches_the_spool_while_the_store_hangs(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def hung(batch: list[LogRecord]) -> None:
        await release.wait()

    spool = tmp_path / "logs.jsonl"
    writer = LogWriter(hung, queue_size=10, batch_size=10, flush_interval_s=0.01, spool_path=spool)
    await writer.start()
    secret = "sk-proj-" + "a1B2" * 10
    assert all(writer.submit(record) for record in records(20, error=f"key {secret}"))
    await eventually(lambda: writer.spooled == 10)  # the writer still waits on the store
    lines = spool.read_bytes().splitlines()
    assert len(lines) == 10 and all(secret.encode() not in line for line in lines)
    release.set()
    await writer.close()
    assert (writer.written, writer.spooled, writer.dropped) == (10, 10, 0)


async def test_a_big_enough_queue_drops_nothing() -> None:
    sink = RecordingSink()
    writer = LogWriter(sink, queue_size=10_000, batch_size=500)
    await writer.start()
    burst = records(10_000)
    assert all(writer.submit(record) for record in burst)
    await writer.close()
    assert (writer.dropped, writer.written) == (0, 10_000)
    assert len(set(sink.ids)) == 10_000
    assert max(len(batch) for batch in sink.batches) == 2_000  # a backlog goes in bigger batches


async def test_a_backlog_is_written_in_bigger_batches_and_the_rest_in_normal_ones() -> None:
    sink = RecordingSink()
    writer = LogWriter(sink, batch_size=10)
    burst = records(100)
    for record in burst:
        writer.submit(record)
    await writer.start()
    await writer.close()
    # 100 queued: four batches' worth or more go 40 at a time, then 20 are left for normal batches
    assert [len(batch) for batch in sink.batches] == [40, 40, 10, 10]
    assert sink.ids == [record.id for record in burst]


async def test_records_are_written_within_the_flush_interval() -> None:
    sink = RecordingSink()
    writer = LogWriter(sink, batch_size=500, flush_interval_s=0.05)
    await writer.start()
    writer.submit(LogRecord(trace_id="t"))
    await eventually(lambda: writer.written == 1, timeout_s=1.0)
    await writer.close()


async def test_close_flushes_what_is_queued() -> None:
    sink = RecordingSink()
    writer = LogWriter(sink, batch_size=500, flush_interval_s=60)
    await writer.start()
    for record in records(7):
        writer.submit(record)
    await asyncio.sleep(0.01)
    assert writer.written == 0
    await writer.close()
    assert writer.written == 7 and writer.queued == 0


async def test_close_without_start_still_flushes() -> None:
    sink = RecordingSink()
    writer = LogWriter(sink)
    writer.submit(LogRecord(trace_id="t"))
    await writer.close()
    assert writer.written == 1


async def test_records_submitted_after_close_are_dropped_and_counted() -> None:
    writer = LogWriter(RecordingSink())
    await writer.start()
    await writer.close()
    assert writer.submit(LogRecord(trace_id="late")) is False
    assert writer.dropped == 1


async def test_a_failing_sink_spools_and_the_spool_is_replayed(tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "logs.jsonl"
    sink = RecordingSink(failing=lambda batch: sink.calls <= 2)
    writer = LogWriter(sink, batch_size=10, flush_interval_s=0.01, spool_path=spool, retry_interval_s=0.05)
    await writer.start()
    submitted = records(20)
    for record in submitted:
        writer.submit(record)
    await eventually(lambda: writer.written == 20)
    await writer.close()
    assert (writer.failures, writer.spooled, writer.replayed, writer.lost) == (2, 20, 20, 0)
    assert sorted(sink.ids) == sorted(record.id for record in submitted)
    assert not writer.spool_pending
    assert not spool.exists() or spool.stat().st_size == 0


async def test_a_spool_left_by_an_earlier_run_is_replayed_at_start(tmp_path: Path) -> None:
    spool = tmp_path / "logs.jsonl"
    down = LogWriter(RecordingSink(failing=lambda batch: True), spool_path=spool)
    await down.start()
    submitted = records(30, metadata={"_user": "u1"})
    for record in submitted:
        down.submit(record)
    await down.close()
    assert down.spooled == 30 and spool.stat().st_mode & 0o777 == 0o600

    sink = RecordingSink()
    up = LogWriter(sink, spool_path=spool)
    await up.start()
    await eventually(lambda: up.replayed == 30)
    await up.close()
    assert sorted(sink.ids) == sorted(record.id for record in submitted)
    assert {record.user for batch in sink.batches for record in batch} == {"u1"}


async def test_a_record_the_store_refuses_does_not_block_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "logs.jsonl"
    outage = True
    sink = RecordingSink(failing=lambda batch: outage or any(r.trace_id == "poison" for r in batch))
    writer = LogWriter(sink, batch_size=10, flush_interval_s=0.01, spool_path=spool, retry_interval_s=0.05)
    await writer.start()
    batch = records(4) + [LogRecord(trace_id="poison")] + records(5)
    for record in batch:
        writer.submit(record)
    await eventually(lambda: writer.spooled == 10)
    outage = False
    await eventually(lambda: writer.replayed == 9)
    await writer.close()
    assert writer.lost == 1
    assert "poison" not in {record.trace_id for b in sink.batches for record in b}


async def test_without_a_spool_failed_batches_are_counted_as_lost() -> None:
    writer = LogWriter(RecordingSink(failing=lambda batch: True), batch_size=5)
    await writer.start()
    for record in records(12):
        writer.submit(record)
    await writer.close()
    assert (writer.written, writer.lost, writer.dropped) == (0, 12, 0)


async def test_close_gives_up_on_a_hung_sink_and_spools_the_rest(tmp_path: Path) -> None:
    async def hung(batch: list[LogRecord]) -> None:
        await asyncio.Event().wait()

    spool = tmp_path / "logs.jsonl"
    writer = LogWriter(hung, batch_size=5, flush_interval_s=0.01, spool_path=spool)
    await writer.start()
    for record in records(12):
        writer.submit(record)
    await asyncio.sleep(0.05)
    await writer.close(timeout_s=0.2)
    assert writer.spooled == 12
    assert len(spool.read_bytes().splitlines()) == 12


async def test_secrets_never_reach_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "logs.jsonl"
    writer = LogWriter(RecordingSink(failing=lambda batch: True), spool_path=spool)
    await writer.start()
    key = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
    writer.submit(
        LogRecord(
            trace_id="t",
            metadata={"authorization": f"Bearer {key}"},
            request_body=f'{{"api_key": "{key}"}}',
            error=f"401 from upstream: Incorrect API key provided: {key}",
        )
    )
    await writer.close()
    content = spool.read_text()
    assert key not in content and "[REDACTED]" in content


async def test_writing_through_the_store(tmp_path: Path) -> None:
    engine = create_engine(None, tmp_path)
    try:
        await upgrade(engine)
        repo = LogRepository(engine)
        sink: Callable[[list[LogRecord]], Awaitable[None]] = repo.insert_many
        writer = LogWriter(sink, batch_size=50, flush_interval_s=0.01, spool_path=tmp_path / "spool.jsonl")
        await writer.start()
        for record in records(120, provider="openai"):
            writer.submit(record)
        await writer.close()
        assert writer.written == 120 and await repo.count() == 120
    finally:
        await engine.dispose()


async def test_scrubbing_yields_to_requests_unless_a_backlog_builds_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # slices of zero and of "forever": the writer yields after every record, or not at all
    monkeypatch.setattr(writer_module, "_SCRUB_SLICE_S", 0.0)
    monkeypatch.setattr(writer_module, "_BACKLOG_SLICE_S", 3600.0)

    async def interleavings(queued: int) -> int:
        """How often a request-like task got the loop while the writer scrubbed one batch of 10."""
        writer = LogWriter(RecordingSink(), batch_size=10)
        for record in records(queued):
            writer.submit(record)
        turns = 0
        done = False

        async def request_task() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(request_task())
        await asyncio.sleep(0)
        turns = 0
        await writer._write([writer._queue.popleft() for _ in range(10)])
        done = True
        await other
        return turns

    assert await interleavings(10) >= 10  # nothing left behind: the loop goes back to requests often
    assert await interleavings(30) <= 1  # more than a batch waits: scrub it in one go


def test_text_without_a_pair_or_an_object_is_only_searched_for_key_shapes() -> None:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(list('ab {}[]",\n') + ["token", "api_key", "sk-proj-abcdefghijklmnopq"])))
    def check(words: list[str]) -> None:
        text = "".join(words)
        # what scrub_text did before it skipped text holding neither ":" nor "="
        full = _TOKEN_VALUE.sub(_redact_token, text)
        full = _redact_json(full) if full.lstrip()[:1] in ("{", "[") else _redact_pairs(full, _BARE_KEY)
        assert scrub_text(text) == full

    check()


def test_nonsense_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        LogWriter(RecordingSink(), queue_size=0)


# -- what a record keeps of bodies, attempts and secrets -----------------------------------------


def test_body_modes_full_truncated_and_off() -> None:
    body = b'{"model":"gpt-4o","messages":[]}' + b" " * 100
    assert body_for_log(body, "full") == body.decode()
    assert body_for_log(body, "off") is None
    assert body_for_log(None, "full") is None
    assert body_for_log(body, BodyLogMode.TRUNCATED, limit=10) == '{"model":"…[truncated, 132 bytes]'
    assert body_for_log(body, "truncated") == body.decode()  # under the 64 KiB default


def test_truncation_never_splits_a_character() -> None:
    body = ("é" * 10).encode()  # two bytes each
    assert body_for_log(body, "truncated", limit=5) == "éé…[truncated, 20 bytes]"


def test_binary_bodies_are_described_not_stored() -> None:
    assert body_for_log(b"\x89PNG\r\n\x1a\n\xff\xfe", "full") == "[binary body, 10 bytes]"


def test_an_unknown_body_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        body_for_log(b"{}", "some")


def test_attempts_are_taken_from_the_gateway_context() -> None:
    attempts = [
        Attempt(
            provider="openai", target_path="0", url="https://x", started_ns=0, ended_ns=5_000_000, status=429
        ),
        Attempt(provider="anthropic", target_path="1", url="https://y", started_ns=0, retry_index=1),
    ]
    assert attempt_entries(attempts) == [
        {
            "target_path": "0",
            "provider": "openai",
            "status": 429,
            "latency_ms": 5,
            "retry_index": 0,
            "error": None,
        },
        {
            "target_path": "1",
            "provider": "anthropic",
            "status": None,
            "latency_ms": None,
            "retry_index": 1,
            "error": None,
        },
    ]


def test_user_comes_from_metadata_and_round_trips_through_dicts() -> None:
    record = LogRecord(trace_id="t", metadata={"_user": "alice"}, cost_breakdown={"input": 1})
    assert record.user == "alice"
    assert LogRecord.from_dict(record.to_dict()) == record


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Authorization": "Bearer abc.def.ghi"}, {"Authorization": "[REDACTED]"}),
        (
            {"x-api-key": "k", "max_tokens": 5, "author": "me"},
            {"x-api-key": "[REDACTED]", "max_tokens": 5, "author": "me"},
        ),
        (
            {"aws_secret_access_key": "s", "password": None},
            {"aws_secret_access_key": "[REDACTED]", "password": None},
        ),
        (
            [["authorization", "Basic dXNlcg=="], ["accept", "*/*"]],
            [["authorization", "[REDACTED]"], ["accept", "*/*"]],
        ),
        (
            "calling https://x.googleapis.com/v1?key=AIzaSyD-1234&alt=sse",
            "calling https://x.googleapis.com/v1?key=[REDACTED]&alt=sse",
        ),
        ("token sk-proj-abcdefghijklmnopqrstu leaked", "token [REDACTED] leaked"),
        ("a task-abcdefghijklmnopqrstuvwxyz id stays", "a task-abcdefghijklmnopqrstuvwxyz id stays"),
        ("retry with api_key=abc123; status 401", "retry with api_key=[REDACTED]; status 401"),
        ('{"api_key": "cut off', '{"api_key": "[REDACTED]"'),
        ('{"prompt_tokens": 5, "session_id": "s-1"}', '{"prompt_tokens": 5, "session_id": "s-1"}'),
        # an event stream is checked event by event, and its prose is left alone
        (
            'data: {"choices":[{"delta":{"content":" token"}}]}\n\n'
            'event: x\ndata: {"secret":"s3"}\n\ndata: {"api_key": "cut\n\ndata: [DONE]\n\n',
            'data: {"choices":[{"delta":{"content":" token"}}]}\n\n'
            'event: x\ndata: {"secret":"[REDACTED]"}\n\ndata: {"api_key": "[REDACTED]"\n\ndata: [DONE]\n\n',
        ),
        ("data: sk-proj-abcdefghijklmnopqrstu\n\n", "data: [REDACTED]\n\n"),
    ],
)
def test_scrub_removes_secrets_by_name_and_by_shape(value: Any, expected: Any) -> None:
    assert scrub(value) == expected
    assert scrub(scrub(value)) == expected


def test_a_scrubbed_record_keeps_no_secret_anywhere() -> None:
    key = "sk-ant-api03-ZyXwVuTsRqPoNmLkJiHgFeDcBa0987"
    record = LogRecord(
        trace_id="t",
        metadata={"x-api-key": key, "_user": "bob"},
        attempts=[{"target_path": "0", "error": f"401 Incorrect API key {key}"}],
        request_body=f'{{"messages": [], "headers": {{"x-api-key": "{key}"}}}}',
        response_body=f'{{"error": "bad key {key}"}}',
        error=f"Authorization: Bearer {key}",
        span_name=f"call with {key}",
    )
    scrub_record(record)
    assert key not in repr(record.to_dict())
    assert record.user == "bob"
