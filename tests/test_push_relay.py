"""A stream relayed past the ASGI send (``PushRelay`` writing to uvicorn's connection): a slow
client holds the provider back instead of filling the gateway's memory, a client that leaves is
heard at once, and a send wrapped by middleware is never bypassed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from tests.conftest import GatewayServer, emulator_settings, free_port
from tests.emulators.openai import OpenAIEmulator
from tests.test_http1 import OK, client, serving
from tests.test_logging_gateway import logged
from tests.test_streaming import OPENAI, events, stream_body
from wayport.app import WayportApp
from wayport.gateway.streaming import PushRelay, StreamPipe, UsageTap
from wayport.http_server import server_options
from wayport.settings import Settings


class FloodUpstream:
    """An OpenAI-style streaming endpoint writing ``count`` events of ``size`` bytes as fast as its
    client reads them; ``finished_at`` is when its last byte was taken by the connection."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.finished_at = 0.0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> FloodUpstream:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._answer, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a small send buffer: what the provider has written is in the gateway's hands, not the kernel's
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):  # the gateway closed it
            while True:  # keep-alive: one answer after another
                await self._answer_one(reader, writer)

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
        count = orjson.loads(await reader.readexactly(length)).get("max_tokens") or self.count
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        delta = {"content": "x" * self.size}
        event = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
        for _ in range(count):
            await self._chunk(writer, b"data: " + orjson.dumps(event) + b"\n\n")
        usage = {"prompt_tokens": 1, "completion_tokens": count, "total_tokens": count + 1}
        last = {"id": "c1", "choices": [], "usage": usage}
        await self._chunk(writer, b"data: " + orjson.dumps(last) + b"\n\n")
        await self._chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        self.finished_at = time.monotonic()

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await writer.drain()


@pytest.fixture
def flood(tmp_path: Path) -> Iterator[tuple[FloodUpstream, GatewayServer]]:
    # 600 events of 50 kB: 30 MB, more than loopback's socket buffers can hold between the three
    # (this machine lets a receive buffer grow to 32 MB, but only while its reader keeps reading)
    upstream = FloodUpstream(count=600, size=50_000).start()
    settings = Settings(
        auth=False,
        data_dir=tmp_path,
        base_urls={"openai": f"http://127.0.0.1:{upstream.port}/v1"},
        trusted_hosts=("127.0.0.1",),
        log_flush_interval_s=0.05,
        stream_stall_timeout_s=0.5,
    )
    server = GatewayServer(settings).start()
    yield upstream, server
    server.stop()
    upstream.stop()


def test_a_slow_client_holds_the_provider_back(flood: tuple[FloodUpstream, GatewayServer]) -> None:
    upstream, gateway = flood
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body()) as r,
    ):
        assert r.status_code == 200
        time.sleep(1.5)  # not reading: three times the stall timeout
        resumed_at = time.monotonic()
        received = []
        for piece in r.iter_raw(1 << 16):  # then reading slowly to the end
            received.append(piece)
            time.sleep(0.001)
        body = b"".join(received).decode()
    chunks = events(body)
    assert chunks[-1] == "[DONE]"
    contents = [orjson.loads(chunk) for chunk in chunks[:-1]]
    assert not [c for c in contents if "error" in c]  # waiting for the client is no provider stall
    assert len(contents) == 600 and all(len(c["choices"][0]["delta"]["content"]) == 50_000 for c in contents)
    # The provider could finish writing only once the client read: the gateway paused reading
    # from it rather than buffering the answer.
    assert upstream.finished_at > resumed_at
    # and the provider's connection, kept alive, serves the next request (reading resumed)
    r = httpx.post(
        gateway.v1 + "/chat/completions", headers=OPENAI, json=stream_body(max_tokens=2), timeout=10
    )
    assert len(events(r.text)) == 3 and events(r.text)[-1] == "[DONE]"


def test_a_client_that_leaves_is_heard_while_the_provider_is_quiet(
    gateway: GatewayServer, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.stream_gap_s = 3.0
    trace = f"t-{uuid.uuid4().hex}"
    headers = {**OPENAI, "x-portkey-trace-id": trace}
    body = stream_body("a b c")
    with httpx.stream("POST", gateway.v1 + "/chat/completions", headers=headers, json=body) as r:
        next(r.iter_raw())
    left_at = time.monotonic()
    (row,) = logged(gateway, trace)
    assert row["error"] == "the client disconnected before the stream ended"
    # logged before the provider's next event (3 s away) could have told the relay
    assert time.monotonic() - left_at < 2


class CountingMiddleware:
    """Wraps ``send`` the way an observability middleware would, counting the body bytes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.body_bytes += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counted)


def test_a_wrapped_send_is_never_bypassed(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    port = free_port()
    app = WayportApp(emulator_settings(openai_emulator, tmp_path, port=port))
    wrapped = CountingMiddleware(app)
    options = {**server_options(app.settings), "log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(wrapped, host="127.0.0.1", port=port, lifespan="on", **options))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", headers=OPENAI, json=stream_body("one two three")
        )
        chunks = events(r.text)
        assert chunks[-1] == "[DONE]"
        assert wrapped.body_bytes == len(r.content)  # all of it went through the middleware
    finally:
        server.should_exit = True
        thread.join(10)


class BehindChannel:
    """A client connection that is full after every write: the client is always behind."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.paused = False
        self.gone = False
        self.on_lost: object = None

    def write(self, chunk: bytes) -> None:
        self.written.append(chunk)
        self.paused = True

    async def drain(self) -> None:
        self.paused = False


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def test_a_stream_that_ends_while_the_client_is_behind_leaves_its_connection_readable() -> None:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + chunked(event)
        + chunked(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        for reply in (answer, OK):  # two answers on one kept-alive connection
            await server.read_request(reader)
            writer.write(reply)  # all at once: the relay gets the whole stream in one callback
            await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        http = client()
        response = await http.request("POST", server.url, {}, b"{}")
        relay = PushRelay(response, StreamPipe(None, UsageTap(strip=False), sse=True, stall_s=5), stream=None)
        channel = BehindChannel()
        assert await relay.run(channel, lambda _: None)  # type: ignore[arg-type]
        assert b"".join(channel.written) == event + b"data: [DONE]\n\n"
        # the connection went back to the pool reading again: the next request is answered on it
        second = await asyncio.wait_for(http.request("GET", server.url, {}, None), 2)
        assert await second.read() == b"{}"
        second.release()
        assert server.connections == 1
