"""Streams are relayed chunk by chunk as they arrive and always end with ``data: [DONE]``."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault
from tests.test_logging_gateway import logged

OPENAI = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-test"}


def stream_body(text: str = "one two three four five", **extra: object) -> dict[str, object]:
    return {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": text}], **extra}


def events(raw: str) -> list[str]:
    return [block.removeprefix("data: ") for block in raw.split("\n\n") if block.strip()]


def test_chunks_reach_the_client_before_the_stream_ends(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.stream_gap_s = 0.15
    arrivals: list[float] = []
    start = time.monotonic()
    with httpx.stream("POST", gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body()) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for _ in r.iter_raw():
            arrivals.append(time.monotonic() - start)
    # 8 events 150 ms apart: the first must arrive long before the last was produced.
    assert len(arrivals) >= 4
    assert arrivals[0] < 0.5 and arrivals[-1] > 0.9


def test_include_usage_is_honoured(gateway: GatewayServer) -> None:
    body = stream_body(stream_options={"include_usage": True})
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, json=body)
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    final = orjson.loads(chunks[-2])
    assert final["choices"] == [] and final["usage"]["total_tokens"] > 0
    assert all(orjson.loads(c)["usage"] is None for c in chunks[:-2])


def test_no_usage_chunk_without_include_usage(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body())
    chunks = [orjson.loads(c) for c in events(r.text)[:-1]]
    assert events(r.text)[-1] == "[DONE]"
    assert all(c["choices"] for c in chunks)  # the usage chunk Wayport asked for is not passed on
    assert all(c.get("usage") is None for c in chunks)
    # ... but Wayport asked the provider for it, to know the cost
    assert openai_emulator.last.json()["stream_options"] == {"include_usage": True}


def test_upstream_cut_mid_stream_ends_with_an_error_event(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(stream_events=2, cut=True))
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body())
    assert r.status_code == 200
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    error = orjson.loads(chunks[-2])["error"]
    assert "broke mid-stream" in error["message"] or "closed the stream" in error["message"]
    assert len(chunks) == 4  # two real events, the error, [DONE]


def test_upstream_stream_without_done_gets_an_error_event(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.inject(Fault(stream_events=3))
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body())
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    assert (
        orjson.loads(chunks[-2])["error"]["message"]
        == "The provider closed the stream before it was complete"
    )


def test_stream_error_status_is_json(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.inject(Fault(status=429, json={"error": {"message": "slow down", "type": "requests"}}))
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body())
    assert r.status_code == 429
    assert r.json()["error"]["message"] == "openai error: slow down"


def test_client_disconnect_stops_the_relay(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.stream_gap_s = 0.2
    trace = f"t-{uuid.uuid4().hex}"
    started = time.monotonic()
    headers = {**OPENAI, "x-portkey-trace-id": trace}
    with httpx.stream(
        "POST", gateway.v1 + "/chat/completions", headers=headers, json=stream_body("a " * 40)
    ) as r:
        next(r.iter_raw())
    # the relay stops at the next chunk (the 40 words would take 8 s), and the log says why
    (row,) = logged(gateway, trace)
    assert row["error"] == "the client disconnected before the stream ended"
    assert time.monotonic() - started < 3
    # The gateway keeps serving after a client walked away mid-stream.
    openai_emulator.stream_gap_s = 0.0
    r = httpx.post(gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body())
    assert events(r.text)[-1] == "[DONE]"


def test_streamed_completions(gateway: GatewayServer) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Paul Graham is", "stream": True}
    r = httpx.post(gateway.v1 + "/completions", headers=OPENAI, json=body)
    chunks = events(r.text)
    assert chunks[-1] == "[DONE]"
    text = "".join(orjson.loads(c)["choices"][0]["text"] for c in chunks[:-1])
    assert text == "Echo: Paul Graham is"


def test_usage_tap_reads_and_strips_the_usage_chunk_across_splits() -> None:
    from wayport.gateway.streaming import UsageTap

    stream = (
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
        b"data: [DONE]\n\n"
    )
    for strip in (True, False):
        for size in (1, 7, len(stream)):
            tap = UsageTap(strip=strip)
            out = b"".join(tap.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + tap.close()
            assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
            assert (b'"choices":[]' in out) is not strip
            assert out.endswith(b"data: [DONE]\n\n") and b'"content":"hi"' in out
