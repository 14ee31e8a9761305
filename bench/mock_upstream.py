"""A cheap OpenAI-compatible mock upstream for the Wayport benchmark.

    .venv/bin/python bench/mock_upstream.py --port 18080 --gap-ms 5

`POST /v1/chat/completions` answers at once with a fixed chat.completion (with usage); when the
JSON body has `"stream": true` it answers with text/event-stream: 20 chat.completion.chunk events
`--gap-ms` apart, then `data: [DONE]`. `GET /v1/models` and `GET /health` answer too (readiness).

It is a raw asyncio Protocol on uvloop with a hand-written HTTP/1.1 parser and pre-encoded
responses, so that it costs a small fraction of what the gateway under test costs per request:
the benchmark attributes the gap between "direct" and "through the gateway" to the gateway.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import time
from typing import cast

try:
    import uvloop
except ImportError:  # the benchmark still works on the default loop, only slower
    uvloop = None  # type: ignore[assignment]

HOST = "127.0.0.1"
MAX_HEADER_BYTES = 64 * 1024
CREATED = 1732646400
MODEL = "gpt-4o-2024-08-06"
REPLY = (
    "Hello! I am Wayport's benchmark mock. This canned answer has about the length of a short "
    "reply from a real chat model, so the response body size is realistic."
)
STREAM_TOKENS = [
    "Hello", "!", " I", " am", " the", " benchmark", " mock", ",", " streaming", " one",
    " token", " per", " event", ",", " twenty", " in", " all", ".",
]  # fmt: skip


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def completion_body() -> bytes:
    return _compact(
        {
            "id": "chatcmpl-wayportbench000000000001",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 31,
                "total_tokens": 40,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "system_fingerprint": "fp_wayportbench",
        }
    )


def _chunk(delta: dict[str, object], finish: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-wayportbench000000000002",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_wayportbench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def stream_events() -> list[bytes]:
    """20 SSE events (role, 18 tokens, finish) and [DONE], each framed as one HTTP chunk."""
    deltas: list[tuple[dict[str, object], str | None]] = [({"role": "assistant", "content": ""}, None)]
    deltas += [({"content": tok}, None) for tok in STREAM_TOKENS]
    deltas.append(({}, "stop"))
    payloads = [b"data: " + _compact(_chunk(d, f)) + b"\n\n" for d, f in deltas]
    payloads.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in payloads]


def _response(status: str, ctype: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status.encode(),
        ctype,
        len(body),
    )
    return head + body


JSON = b"application/json"
COMPLETION_RESPONSE = _response("200 OK", JSON, completion_body())
MODELS_RESPONSE = _response(
    "200 OK", JSON, _compact({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
)
HEALTH_RESPONSE = _response("200 OK", JSON, b'{"status":"ok"}')
NOT_FOUND_RESPONSE = _response("404 Not Found", JSON, b'{"error":{"message":"mock: unknown path"}}')
BAD_JSON_RESPONSE = _response("400 Bad Request", JSON, b'{"error":{"message":"mock: body is not JSON"}}')
BAD_REQUEST_RESPONSE = _response("400 Bad Request", JSON, b'{"error":{"message":"mock: malformed request"}}')
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
STREAM_END = b"0\r\n\r\n"


class Request:
    """One parsed request: only what the mock needs to answer it."""

    __slots__ = ("method", "path", "close", "body")

    def __init__(self, method: bytes, path: bytes, close: bool, body: bytes) -> None:
        self.method = method
        self.path = path
        self.close = close
        self.body = body


class ParseError(Exception):
    pass


def _header_fields(block: bytes) -> tuple[int | None, bool, bool]:
    """-> (content-length, chunked, connection-close) from the header lines after the request line."""
    length: int | None = None
    chunked = close = False
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    return length, chunked, close


def _dechunk(buf: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `start`; None until it is complete."""
    parts: list[bytes] = []
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # tolerate trailers
            if end < 0:
                return None
            return b"".join(parts), end + 4
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
        pos = eol + 2 + size + 2


def parse_request(buf: bytearray) -> tuple[Request, int] | None:
    """Parse one request from the front of `buf`: (request, bytes consumed), or None if incomplete."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > MAX_HEADER_BYTES:
            raise ParseError("header too large")
        return None
    first_eol = buf.find(b"\r\n")
    parts = bytes(buf[:first_eol]).split(b" ")
    if len(parts) != 3:
        raise ParseError("bad request line")
    method, path, version = parts
    length, chunked, close = _header_fields(bytes(buf[first_eol + 2 : head_end]))
    close = close or version == b"HTTP/1.0"
    body_start = head_end + 4
    if chunked:
        decoded = _dechunk(buf, body_start)
        if decoded is None:
            return None
        return Request(method, path, close, decoded[0]), decoded[1]
    end = body_start + (length or 0)
    if len(buf) < end:
        return None
    return Request(method, path, close, bytes(buf[body_start:end])), end


def wants_stream(body: bytes) -> bool | None:
    """True/False from the JSON body's "stream" field; None if the body is not a JSON object."""
    if b'"stream"' not in body:  # most bodies: skip the JSON parse entirely
        return False if body.lstrip()[:1] == b"{" else None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return isinstance(obj, dict) and obj.get("stream") is True


class MockProtocol(asyncio.Protocol):
    """One client connection. Requests are answered in order; while a stream is being sent,
    later (pipelined) requests wait in the buffer."""

    def __init__(self, events: list[bytes], gap_s: float) -> None:
        self.events = events
        self.gap_s = gap_s
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.streaming = False
        self.close_after_stream = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.streaming:
            self.serve_buffer()

    def serve_buffer(self) -> None:
        while self.transport is not None and not self.streaming:
            try:
                parsed = parse_request(self.buf)
            except (ParseError, ValueError):
                self.transport.write(BAD_REQUEST_RESPONSE)
                self.transport.close()
                return
            if parsed is None:
                return
            request, used = parsed
            del self.buf[:used]
            self.answer(request)

    def answer(self, request: Request) -> None:
        assert self.transport is not None
        if request.method == b"POST" and request.path.endswith(b"/chat/completions"):
            stream = wants_stream(request.body)
            if stream is None:
                self.transport.write(BAD_JSON_RESPONSE)
            elif stream:
                self.start_stream(request.close)
                return
            else:
                self.transport.write(COMPLETION_RESPONSE)
        elif request.method == b"GET" and request.path.endswith(b"/models"):
            self.transport.write(MODELS_RESPONSE)
        elif request.method == b"GET" and request.path == b"/health":
            self.transport.write(HEALTH_RESPONSE)
        else:
            self.transport.write(NOT_FOUND_RESPONSE)
        if request.close:
            self.transport.close()

    def start_stream(self, close: bool) -> None:
        assert self.transport is not None
        self.streaming = True
        self.close_after_stream = close
        self.transport.write(STREAM_HEAD + self.events[0])
        self.schedule(1)

    def schedule(self, index: int) -> None:
        # call_later chains are cheaper than one task per stream
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.gap_s, self.send_event, index)

    def send_event(self, index: int) -> None:
        if self.transport is None:
            return
        if index < len(self.events) - 1:
            self.transport.write(self.events[index])
            self.schedule(index + 1)
            return
        self.transport.write(self.events[index] + STREAM_END)
        self.streaming = False
        self.timer = None
        if self.close_after_stream:
            self.transport.close()
            return
        self.serve_buffer()


def _install_loop() -> None:
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(port: int, gap_s: float) -> None:
    loop = asyncio.get_running_loop()
    events = stream_events()
    server = await loop.create_server(
        functools.partial(MockProtocol, events, gap_s), HOST, port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream on http://{HOST}:{port}/v1 (stream gap {gap_s * 1000:g} ms)", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--gap-ms", type=float, default=5.0, help="gap between SSE events (default 5)")
    args = parser.parse_args()
    _install_loop()
    started = time.monotonic()
    asyncio.run(serve(args.port, args.gap_ms / 1000))
    print(f"mock upstream stopped after {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
